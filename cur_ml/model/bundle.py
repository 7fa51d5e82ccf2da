"""The served unit: a fitted classifier + its signed manifest, pickled and checked by sha256.

The file is a plain pickle (protocol 5, uncompressed): Python's C unpickler loads it
in a fifth of the time joblib's compressed format took (0.18 s vs 0.7-1.0 s for a
model of all appeals), which is most of a cold start. Older `model.joblib` files load too.
A pickle runs code when it is read, so nothing is unpickled before the manifest's HMAC
verifies (`signing.py`), the manifest names a plain file of the directory whose sha256
matches, and scikit-learn's major.minor is the one the model was trained with.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import platform
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from cur_ml.data import appeal_columns
from cur_ml.errors import ModelError, ModelIntegrityError
from cur_ml.model.classifier import AppealClassifier
from cur_ml.model.explain import explain_batch
from cur_ml.model.output import build_predictions
from cur_ml.model.review import ReviewPolicy
from cur_ml.model.signing import SIGNATURE_FIELD, model_key, sign_manifest, verify_manifest
from cur_ml.settings import Settings

__all__ = [
    "LEGACY_MODEL_FILE",
    "MANIFEST_NAME",
    "MODEL_FILE",
    "RoutingModel",
    "id_fingerprints",
    "library_versions",
    "load_model",
    "model_path",
    "read_manifest",
    "sign_directory",
    "write_signed_manifest",
]

log = logging.getLogger(__name__)
MODEL_FILE = "model.pkl"
#: What models saved before the switch to plain pickle are called.
LEGACY_MODEL_FILE = "model.joblib"
MANIFEST_NAME = "manifest.json"
_LIBRARIES = ("cur-ml", "scikit-learn", "numpy", "scipy", "spacy", "pymorphy3", "pandas")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def id_fingerprints(ids: pd.Series | np.ndarray) -> np.ndarray:
    """Sorted unique 64-bit hashes of appeal ids: what a model trained on, in 8 bytes a row,
    so the promotion gate can tell whether a model has seen the appeals it is judged on."""
    values = pd.Series(ids).astype(str).to_numpy(dtype=object)
    return np.unique(pd.util.hash_array(values))


@dataclass
class RoutingModel:
    """A fitted `AppealClassifier` with its manifest (version, data hash, labels, metrics)."""

    classifier: AppealClassifier
    manifest: dict[str, Any] = field(default_factory=dict)
    policy: ReviewPolicy = field(default_factory=ReviewPolicy)
    #: `id_fingerprints` of the training appeals; None when unknown (models saved before).
    trained_on: np.ndarray | None = None

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unversioned"))

    @staticmethod
    def new_version(data_sha256: str) -> str:
        return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{data_sha256[:8]}"

    def predict(self, records: list[dict] | pd.DataFrame, explain: bool = False) -> list[dict]:
        """Predictions for a batch, in input order; a single appeal is a batch of one."""
        frame = appeal_columns(records)
        if not frame["text"]:
            return []
        scores = self.classifier.score(frame)
        out = build_predictions(self.classifier, frame, scores, self.policy, self.version)
        if explain:
            explanations = explain_batch(self.classifier, frame["text"], scores, out)
            for pred, explanation in zip(out, explanations, strict=True):
                pred["explanation"] = explanation
        return out

    def label_sets(self) -> dict[str, list[str]]:
        tax = self.classifier.taxonomy_
        return {
            "category": tax.categories,
            "reason": tax.reasons,
            "urgency": ["high", "medium", "low"],
            "agency": tax.agencies,
        }

    def seen(self, ids: pd.Series) -> int | None:
        """How many of these appeal ids the model trained on; None when it cannot tell."""
        if self.trained_on is None:
            return None
        return int(np.isin(id_fingerprints(ids), self.trained_on).sum())

    # --------------------------------------------------------------- disk
    def save(self, directory: str | Path, key: bytes | None = None) -> Path:
        """Write the model file and its signed manifest.json (with the file's sha256) into
        `directory`. `key`: the signing key (None: the configured one, created if missing)."""
        key = model_key(Settings(), create=True) if key is None else key
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (MODEL_FILE + ".tmp")
        payload = {
            "classifier": self.classifier,
            "policy": self.policy,
            "trained_on": self.trained_on,
        }
        with tmp.open("wb") as fh:
            pickle.dump(payload, fh, protocol=5)
        tmp.replace(directory / MODEL_FILE)
        self.manifest.pop(SIGNATURE_FIELD, None)
        self.manifest.update(
            model_file=MODEL_FILE,
            model_sha256=_sha256(directory / MODEL_FILE),
            libraries=library_versions(),
            labels=self.label_sets(),
        )
        write_signed_manifest(directory, self.manifest, key)
        return directory


def write_signed_manifest(directory: Path, manifest: dict[str, Any], key: bytes) -> None:
    """Write `manifest` with its signature under `key` as `directory`/manifest.json, atomically
    (the model file must be in place already: watchers key on the manifest)."""
    signed = {**manifest, SIGNATURE_FIELD: sign_manifest(manifest, key)}
    tmp = Path(directory) / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(signed, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(Path(directory) / MANIFEST_NAME)


def read_manifest(directory: Path) -> dict[str, Any]:
    """`directory`/manifest.json as a dict; `ModelError` when absent or not a JSON object."""
    manifest_path = Path(directory) / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelError(f"no model at {directory}: {MANIFEST_NAME} is missing (train one first)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelIntegrityError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ModelIntegrityError(f"{manifest_path} is not a JSON object")
    return manifest


def model_path(directory: Path, manifest: dict[str, Any]) -> Path:
    """The model file the manifest names, refused unless it is a plain file name (no
    directory part, no `..`, not absolute): a manifest must not point outside its directory."""
    name = manifest.get("model_file", MODEL_FILE)
    if (
        not isinstance(name, str)
        or not name.strip()
        or any(c in name for c in "/\\\0")
        or ".." in name
        or Path(name).is_absolute()
    ):
        raise ModelIntegrityError(
            f"{Path(directory) / MANIFEST_NAME}: model_file {name!r} is not a plain file name "
            "inside the model directory: refusing to load"
        )
    return Path(directory) / name


def _major_minor(text: object) -> tuple[int, int] | None:
    found = re.match(r"(\d+)\.(\d+)", str(text))
    return (int(found[1]), int(found[2])) if found else None


def _check_sklearn(manifest: dict[str, Any], where: Path) -> None:
    """Refuse a model pickled by another scikit-learn major.minor: its estimators may unpickle
    into objects that predict differently, or not at all."""
    trained = (manifest.get("libraries") or {}).get("scikit-learn")
    try:
        now = version("scikit-learn")
    except PackageNotFoundError:
        now = "not installed"
    if _major_minor(trained) is None or _major_minor(trained) != _major_minor(now):
        raise ModelIntegrityError(
            f"{where} was trained with scikit-learn {trained}, this environment has "
            f"scikit-learn {now}: major.minor must be equal (retrain the model, or install "
            f"scikit-learn=={trained})"
        )


def _verified_bytes(directory: Path, manifest: dict[str, Any]) -> tuple[Path, bytes]:
    """The model file's bytes, after checking its name and that they match the manifest."""
    path = model_path(directory, manifest)
    if not path.is_file():
        raise ModelError(f"model file missing: {path}")
    data = path.read_bytes()  # read once: hashed, then unpickled
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest.get("model_sha256"):
        raise ModelIntegrityError(
            f"{path} does not match its manifest (sha256 {actual[:12]}… ≠ "
            f"{str(manifest.get('model_sha256'))[:12]}…): refusing to load"
        )
    return path, data


def sign_directory(directory: str | Path, key: bytes) -> dict[str, Any]:
    """Adopt the model in `directory` as trusted: sign its manifest with `key`, after checking
    that the model file is a plain name there and matches the manifest's sha256. Nothing is
    unpickled. Returns the signed manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    _verified_bytes(directory, manifest)
    manifest.pop(SIGNATURE_FIELD, None)
    write_signed_manifest(directory, manifest, key)
    return manifest


def load_model(directory: str | Path, key: bytes | None = None) -> RoutingModel:
    """Load a saved model. Refused, before anything is unpickled, when the manifest's
    signature does not verify with `key` (None: the configured key), its `model_file` is not
    a plain file of the directory, the file does not match its sha256, or scikit-learn's
    major.minor differs from the one that trained it."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    manifest_path = directory / MANIFEST_NAME
    verify_manifest(manifest, model_key(Settings()) if key is None else key, manifest_path)
    path, data = _verified_bytes(directory, manifest)
    _check_sklearn(manifest, manifest_path)
    then, now = (manifest.get("libraries") or {}).get("numpy"), version("numpy")
    if then != now:
        log.warning("model trained with numpy %s, this environment has %s", then, now)
    manifest.pop(SIGNATURE_FIELD, None)
    if path.name == LEGACY_MODEL_FILE:
        payload = joblib.load(io.BytesIO(data))
    else:
        payload = pickle.loads(data)
    return RoutingModel(
        payload["classifier"],
        manifest,
        payload.get("policy", ReviewPolicy()),
        payload.get("trained_on"),
    )
