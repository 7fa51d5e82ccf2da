"""MLflow records of every train / retrain / evaluate run, and the model registry.

The model is logged as an MLflow pyfunc (so `mlflow models serve` can serve it too) and
registered as `cur-ml`; the aliases `champion` and `challenger` mark the roles, so the
service can load `models:/cur-ml-{region}@champion`. MLflow is imported on first use: it is slow
to import and the serving hot path never needs it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cur_ml.model.bundle import MANIFEST_NAME, RoutingModel, load_model
from cur_ml.model.signing import model_key
from cur_ml.settings import REPO_ROOT, Settings
from cur_ml.tracking_fields import (
    DEFAULT_PROFILE,
    DataInput,
    input_example,
    log_inputs,
    metric_keys,
    pyfunc_signature,
    split_figures,
)

__all__ = [
    "RoutingPyfunc",
    "git_commit",
    "log_run",
    "record_run",
    "resolve_model_source",
    "set_alias",
]

log = logging.getLogger(__name__)


def git_commit() -> str:
    """Commit of the checkout the code runs from ('unknown' outside git)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _mlflow(settings: Settings):
    # With a tracking server MLflow prints "View run … at URL" on stdout, where the commands
    # print their JSON.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        location = settings.mlflow_artifact_location
        mlflow.create_experiment(settings.mlflow_experiment, artifact_location=location or None)
    mlflow.set_experiment(settings.mlflow_experiment)
    return mlflow


def _flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The run's own figures as `{head}_{metric}` (see `cur_ml.tracking_fields.metric_keys`)."""
    figures, _, _, _ = split_figures(metrics, None, None)
    return metric_keys(figures)


class RoutingPyfunc:
    """pyfunc wrapper: a frame of appeals in, a frame of predictions out.

    Logged with `pyfunc_signature()`, so MLflow refuses a frame without `text` before it
    gets here; an empty text is refused here, as the HTTP API refuses it.
    """

    def __new__(cls, *args: Any, **kwargs: Any):
        import mlflow.pyfunc

        class _Impl(mlflow.pyfunc.PythonModel):
            def load_context(self, context) -> None:
                # Verified like every load: under `mlflow models serve` the key comes from
                # the server's environment (CUR_ML_MODEL_KEY or CUR_ML_MODEL_KEY_FILE).
                key = model_key(Settings())
                self.model = load_model(Path(context.artifacts["model_dir"]), key)

            def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
                _check_texts(model_input)
                predictions = self.model.predict(model_input)
                return pd.json_normalize(predictions)

        return _Impl()


def _check_texts(frame: pd.DataFrame) -> None:
    """Refuse rows without text (MLflow's schema lets a null through): a 400, never a guess."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    text = frame["text"] if "text" in frame.columns else pd.Series([None] * len(frame))
    empty = [i for i, t in enumerate(text) if not isinstance(t, str) or not t.strip()]
    if empty:
        rows = ", ".join(map(str, empty[:10]))
        raise MlflowException(
            f"text: must be a non-empty string (rows {rows})", INVALID_PARAMETER_VALUE
        )


def log_run(
    settings: Settings,
    *,
    kind: str,
    model: RoutingModel,
    model_dir: Path | None,
    metrics: dict[str, Any],
    report_dir: Path | None = None,
    extra_params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    register: bool = True,
    split: str | None = None,
    profile: str | None = None,
    role: str | None = None,
    data: Sequence[DataInput] = (),
) -> dict[str, str | None]:
    """Record one run; log and register the model when `model_dir` is given.

    The single place that names metrics: `{head}_{metric}` for every kind of run, with
    `split`, `profile` and `role` as tags (see `split_figures` for the shapes `metrics`
    may take). `data` is logged as the run's dataset inputs. A run without `model_dir`
    (an evaluation) is linked to the registered version of `model`, when there is one.
    Returns the run id and the registered model version (None when not registered).
    """
    mlflow = _mlflow(settings)
    manifest = model.manifest
    figures, split, role, others = split_figures(metrics, split, role)
    run_tags = {
        "kind": kind,
        "model_version": model.version,
        "git_commit": git_commit(),
        "data_sha256": manifest.get("data", {}).get("sha256", ""),
    }
    if figures:
        run_tags.update(split=split or "unknown", profile=profile or DEFAULT_PROFILE)
    if role:
        run_tags["role"] = role
    with mlflow.start_run(run_name=f"{kind}-{model.version}") as run:
        mlflow.set_tags({**run_tags, **(tags or {})})
        params = {**manifest.get("params", {}), **(extra_params or {})}
        params["training_rows"] = manifest.get("data", {}).get("rows")
        params["corrections"] = manifest.get("corrections", {}).get("applied", 0)
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        datasets = log_inputs(mlflow, data)
        if report_dir is not None and report_dir.exists():
            mlflow.log_artifacts(str(report_dir), artifact_path="report")
        version, model_id = None, None
        if model_dir is not None:
            name = settings.registered_model
            version, model_id = _log_model(mlflow, model, model_dir, register, name)
        else:
            version, model_id = _link_evaluation(
                mlflow, model, run.info.run_id, split, profile, settings.registered_model
            )
            if version is not None:
                mlflow.set_tag("registered_version", version)
        # Metrics of the model itself, on the data judged (the last input), when known.
        judged = datasets[-1] if datasets and figures else None
        mlflow.log_metrics(metric_keys(figures), model_id=model_id, dataset=judged)
        for other, other_figures in others.items():
            with mlflow.start_run(run_name=f"{kind}-{other}", nested=True):
                mlflow.set_tags({**run_tags, "role": other, "kind": f"{kind}-compared"})
                mlflow.log_metrics(metric_keys(other_figures))
        return {
            "run_id": run.info.run_id,
            "registered_version": None if version is None else str(version),
        }


def _log_model(
    mlflow: Any, model: RoutingModel, model_dir: Path, register: bool, name: str
) -> tuple[str | None, str | None]:
    """Log `model_dir` as a pyfunc with its signature; register it. (version, model id)."""
    mlflow.log_artifact(str(model_dir / MANIFEST_NAME))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=RoutingPyfunc(),
        artifacts={"model_dir": str(model_dir)},
        code_paths=[str(Path(__file__).resolve().parent)],
        pip_requirements=_requirements(),
        signature=pyfunc_signature(),
        input_example=input_example(),
        registered_model_name=name if register else None,
    )
    version = getattr(info, "registered_model_version", None)
    if version is not None:
        client = mlflow.MlflowClient()
        client.set_model_version_tag(name, str(version), "model_version", model.version)
    return (None if version is None else str(version)), getattr(info, "model_id", None)


def _link_evaluation(
    mlflow: Any,
    model: RoutingModel,
    run_id: str,
    split: str | None,
    profile: str | None,
    name: str,
) -> tuple[str | None, str | None]:
    """The registered version of `model` (found by its `model_version` tag), tagged with this
    evaluation's run id; (None, None) when the model was never registered."""
    client = mlflow.MlflowClient()
    try:
        found = client.search_model_versions(
            f"name = '{name}' and tags.model_version = '{model.version}'"
        )
    except Exception as exc:  # an old registry without tag search: the run stays unlinked
        log.info("cannot look up the registered version of %s: %s", model.version, exc)
        return None, None
    if not found:
        return None, None
    newest = max(found, key=lambda mv: int(mv.version))
    key = f"evaluation_{split or 'unknown'}_{profile or DEFAULT_PROFILE}"
    client.set_model_version_tag(name, newest.version, key, run_id)
    # MLflow 3 keeps the model as a LoggedModel (source models:/m-...): the run names it as
    # its input, and the metrics logged with its id show on the model's page.
    model_id = newest.model_id or _logged_model_id(newest.source)
    if model_id:
        from mlflow.entities import LoggedModelInput

        mlflow.log_input(model=LoggedModelInput(model_id))
    return str(newest.version), model_id


def _logged_model_id(source: str | None) -> str | None:
    """`models:/m-abc` → `m-abc`; None for sources of older MLflow versions (runs:/...)."""
    if source and source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/")[0]
    return None


def record_run(
    settings: Settings,
    *,
    kind: str,
    model: RoutingModel,
    metrics: dict[str, Any],
    model_dir: Path | None = None,
    report_dir: Path | None = None,
    aliases: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
    **details: Any,
) -> dict[str, str | None]:
    """`log_run` + aliases when MLflow is enabled; a record, never a gate: failures only warn.

    `details` go to `log_run` as they are (`split`, `profile`, `role`, `data`, ...).
    """
    if not settings.mlflow_enabled:
        return {}
    try:
        run = log_run(
            settings,
            kind=kind,
            model=model,
            model_dir=model_dir,
            metrics=metrics,
            report_dir=report_dir,
            tags=tags,
            **details,
        )
        for alias in aliases:
            if run["registered_version"]:
                set_alias(settings, alias, run["registered_version"])
        return run
    except Exception as exc:  # the model is saved already; a tracking outage must not undo that
        log.warning("MLflow logging failed: %s", exc)
        return {"error": str(exc)}


def set_alias(settings: Settings, alias: str, registered_version: str) -> None:
    """Point `models:/cur-ml-<region>@<alias>` at a registered version."""
    mlflow = _mlflow(settings)
    mlflow.MlflowClient().set_registered_model_alias(
        settings.registered_model, alias, registered_version
    )


def resolve_model_source(source: str, settings: Settings) -> Path:
    """A model directory for `source`: a path, or a registry URI such as
    models:/cur-ml-spb@champion."""
    if not source.startswith("models:/"):
        return Path(source)
    mlflow = _mlflow(settings)
    target = Path(tempfile.mkdtemp(prefix="cur-ml-model-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target)))
    found = next(local.rglob(MANIFEST_NAME), None)
    if found is None:
        raise FileNotFoundError(f"{source} holds no {MANIFEST_NAME}")
    return found.parent


def _requirements() -> list[str]:
    from importlib.metadata import version

    names = [
        "scikit-learn",
        "numpy",
        "scipy",
        "pandas",
        "spacy",
        "pymorphy3",
        "pymorphy3-dicts-ru",
        "joblib",
        "pydantic-settings",
        "tqdm",
    ]
    return [f"{n}=={version(n)}" for n in names]
