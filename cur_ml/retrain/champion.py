"""One champion per region: the MLflow registry alias `champion` of model `cur-ml-<region>`
(`settings.registered_model`; the functions here take settings scoped to one region).

The model directory (`settings.model_dir`) is only a cache of the version the alias points
to: `retrain` loads the champion through the registry (refreshing the cache when the alias
moved), and promotion moves the alias first, then refreshes the cache — so the service, the
retraining and `mlflow models serve -m models:/cur-ml-spb@champion` all serve the same model.

With MLflow switched off (`CUR_ML_MLFLOW_ENABLED=false`, as in most tests) there is no
registry: the champion is the model in the directory, as before.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from cur_ml.errors import ModelSignatureError
from cur_ml.model.bundle import MANIFEST_NAME, RoutingModel, load_model, model_path, read_manifest
from cur_ml.model.signing import model_key, verify_manifest
from cur_ml.settings import Settings

__all__ = [
    "CHAMPION",
    "Champion",
    "cache_version",
    "load_champion",
    "promote",
    "promote_files",
    "registered",
    "registry_version_of",
    "resolve_source",
]

log = logging.getLogger(__name__)

CHAMPION = "champion"


@dataclass
class Champion:
    """The model to beat, where it was loaded from, and its registry version (if any)."""

    model: RoutingModel
    directory: Path
    source: str  # "registry" or "directory"
    registered_version: str | None = None


def promote_files(source: Path, target: Path) -> None:
    """Put `source`'s model in `target`: the model file first, the manifest last, each atomically.

    A watcher that keys on the manifest therefore never sees a manifest of a file not there yet.
    The manifest must name a plain file of `source` (nothing else is copied).
    """
    target.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(source)
    for name in (model_path(source, manifest).name, MANIFEST_NAME):
        tmp = target / f".{name}.incoming"
        shutil.copyfile(source / name, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target / name)


def _client(settings: Settings):
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _store_exists(settings: Settings) -> bool:
    """False for a local SQLite tracking store not created yet: nothing can be registered
    there, and asking would create it."""
    uri = settings.mlflow_tracking_uri
    if not uri.startswith("sqlite:"):
        return True
    database = make_url(uri).database
    return bool(database) and Path(database).exists()


def registered(settings: Settings, alias: str = CHAMPION) -> Any | None:
    """The registry's ModelVersion behind `models:/cur-ml-<region>@<alias>`; None when MLflow
    is off, the model or the alias does not exist yet. Other registry errors are raised."""
    if not settings.mlflow_enabled or not _store_exists(settings):
        return None
    from mlflow.exceptions import MlflowException

    try:
        return _client(settings).get_model_version_by_alias(settings.registered_model, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _cached_version(directory: Path) -> str | None:
    try:
        return json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None


def cache_version(settings: Settings, version: Any, target: Path | None = None) -> Path:
    """`target` (default: the model directory) holding registry version `version`: left as
    it is when it holds that model already, else downloaded from the registry into it."""
    target = target or settings.model_dir
    wanted = (version.tags or {}).get("model_version")
    if wanted and _cached_version(target) == wanted:
        return target
    uri = settings.mlflow_tracking_uri
    source = _client(settings).get_model_version_download_uri(
        settings.registered_model, version.version
    )
    with tempfile.TemporaryDirectory(prefix="cur-ml-champion-") as tmp:
        found = _download_model_dir(source, Path(tmp), uri)
        if found is None:
            raise FileNotFoundError(f"registry version {version.version} holds no {MANIFEST_NAME}")
        # Only a model signed with our key reaches the cache (which the service watches).
        verify_manifest(read_manifest(found), model_key(settings), found / MANIFEST_NAME)
        promote_files(found, target)
    log.info("model cache %s now holds registry version %s", target, version.version)
    return target


def _download_model_dir(source: str, into: Path, tracking_uri: str) -> Path | None:
    """The model directory inside a logged pyfunc (`artifacts/<name>/`), downloaded alone:
    the pyfunc also holds the package's code, which the cache does not need."""
    import mlflow

    artifacts = source.rstrip("/") + "/artifacts"
    try:
        listed = mlflow.artifacts.list_artifacts(artifact_uri=artifacts, tracking_uri=tracking_uri)
        candidates = [a.path.rsplit("/", 1)[-1] for a in listed if a.is_dir]
    except Exception as exc:  # a store that cannot list: take the whole model
        log.info("cannot list %s (%s); downloading the whole model", artifacts, exc)
        candidates = []
    for name in candidates:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{artifacts}/{name}", dst_path=str(into), tracking_uri=tracking_uri
            )
        )
        if (local / MANIFEST_NAME).is_file():
            return local
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(into), tracking_uri=tracking_uri
        )
    )
    found = next(local.rglob(MANIFEST_NAME), None)
    return None if found is None else found.parent


def load_champion(settings: Settings) -> Champion | None:
    """The champion: the registry alias's version (through the cache) when MLflow is on and
    the alias exists; else the model in the directory; None when there is none at all."""
    version = registered(settings)
    if version is not None:
        directory = cache_version(settings, version)
        model = load_model(directory, model_key(settings))
        return Champion(model, directory, "registry", str(version.version))
    directory = settings.model_dir
    if not (directory / MANIFEST_NAME).exists():
        return None
    if settings.mlflow_enabled:
        log.warning(
            "no `%s` alias in the registry yet: the model in %s is the champion",
            CHAMPION,
            directory,
        )
    key = model_key(settings)  # no usable key: an error, not an absent champion
    try:
        return Champion(load_model(directory, key), directory, "directory")
    except ModelSignatureError:
        raise  # tampered, or signed with another key: a person decides, never the gate
    except Exception as exc:  # a broken champion is replaced, not fatal
        log.warning(
            "current champion at %s cannot be loaded (%s); treating as absent", directory, exc
        )
        return None


def promote(settings: Settings, source: Path, registered_version: str | None) -> None:
    """Make `source`'s model the champion: move the registry alias (when MLflow is on), then
    refresh the cache that the service watches."""
    if settings.mlflow_enabled:
        if registered_version is None:
            raise RuntimeError("the challenger is not in the registry: the alias cannot move")
        from cur_ml.tracking import set_alias

        set_alias(settings, CHAMPION, registered_version)
    promote_files(source, settings.model_dir)


def resolve_source(uri: str, settings: Settings) -> Path:
    """A model directory for the service's `CUR_ML_MODEL_URI`:
    `models:/cur-ml-<region>@<alias>` and `models:/cur-ml-<region>/<version>` land in the
    model directory (the cache; downloaded only when it holds another model); anything else
    goes through `tracking.resolve_model_source`."""
    name, alias, number = _parse(uri)
    if name != settings.registered_model or (alias is None and number is None):
        from cur_ml.tracking import resolve_model_source

        return resolve_model_source(uri, settings)
    version = (
        registered(settings, alias)
        if alias is not None
        else _client(settings).get_model_version(settings.registered_model, number)
    )
    if version is None:
        raise FileNotFoundError(f"{uri}: no such alias in the registry")
    return cache_version(settings, version)


def registry_version_of(uri: str, settings: Settings) -> str | None:
    """The model version (manifest `version`) an alias URI points to now, for the service's
    poll; None when it cannot be told."""
    _, alias, _ = _parse(uri)
    if alias is None:
        return None
    version = registered(settings, alias)
    return None if version is None else (version.tags or {}).get("model_version")


def _parse(uri: str) -> tuple[str | None, str | None, str | None]:
    """models:/name@alias → (name, alias, None); models:/name/3 → (name, None, '3')."""
    if not uri.startswith("models:/"):
        return None, None, None
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, alias, None
    name, _, number = rest.partition("/")
    return name, None, (number if number.isdigit() else None)
