"""Signed manifests: a model file is a pickle, i.e. code, so it is read only when its
manifest carries an HMAC-SHA256 made with a key kept outside the model directory.

The manifest names the model file and its sha256, so the signature covers the file's bytes
too. The key is `CUR_ML_MODEL_KEY`, or the file `CUR_ML_MODEL_KEY_FILE` (`var/model.key`)
that `train` and `serve` create when neither exists. Whoever can write the model directory
but cannot read the key cannot make a manifest that verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from cur_ml.errors import ModelKeyError, ModelSignatureError
from cur_ml.settings import Settings

__all__ = ["MIN_KEY_CHARS", "SIGNATURE_FIELD", "model_key", "sign_manifest", "verify_manifest"]

log = logging.getLogger(__name__)

#: The manifest field that holds the signature (left out of what is signed).
SIGNATURE_FIELD = "signature"
MIN_KEY_CHARS = 32
_SCHEME = "hmac-sha256:"
_HOW_TO_ADOPT = (
    "if you trust this model, sign it with `cur-ml model sign {directory}`; otherwise "
    "retrain it or restore the key it was signed with"
)


def model_key(settings: Settings, *, create: bool = False) -> bytes:
    """The signing key: `settings.model_key`, else the key file (made now when `create` and
    it does not exist). Raises `ModelKeyError` (one line) when there is no usable key."""
    if settings.model_key is not None:
        return _checked(settings.model_key.get_secret_value(), "CUR_ML_MODEL_KEY")
    path = Path(settings.model_key_file)
    where = f"CUR_ML_MODEL_KEY_FILE ({path})"
    if _inside(path, settings.model_dir):
        raise ModelKeyError(
            f"{where} is inside the model directory {settings.model_dir}: whoever writes models "
            "could sign them; keep the key elsewhere"
        )
    if not path.exists():
        if not create:
            raise ModelKeyError(
                f"no model signing key: CUR_ML_MODEL_KEY is unset and {path} does not exist "
                "(`cur-ml train` or `cur-ml serve` create the file; or set CUR_ML_MODEL_KEY)"
            )
        _create(path)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelKeyError(f"cannot read {where}: {exc}") from exc
    if path.stat().st_mode & 0o077:
        log.warning("model signing key %s is readable by other users: chmod 600 it", path)
    return _checked(text, where)


def _checked(key: str, where: str) -> bytes:
    if len(key) < MIN_KEY_CHARS:
        raise ModelKeyError(
            f"{where} is {len(key)} characters long; a model signing key needs at least "
            f"{MIN_KEY_CHARS} (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return key.encode("utf-8")


def _inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(Path(directory).resolve())


def _create(path: Path) -> None:
    """32 random bytes as hex, written with mode 0600 (O_EXCL: a concurrent start that made
    it first wins, and its key is used)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    log.warning(
        "created the model signing key %s (mode 0600): models trained from now on are signed "
        "with it; back it up, keep it out of the model directory, set CUR_ML_MODEL_KEY to its "
        "contents where models are loaded elsewhere (mlflow models serve)",
        path,
    )


def _canonical(manifest: dict[str, Any]) -> bytes:
    """The signed bytes: the manifest as it reads back from JSON (tuples are lists, keys are
    strings), keys sorted, no whitespace, without the signature itself."""
    unsigned = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    as_read = json.loads(json.dumps(unsigned, ensure_ascii=False))
    return json.dumps(as_read, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def sign_manifest(manifest: dict[str, Any], key: bytes) -> str:
    """The signature of `manifest` (every field but the signature) under `key`."""
    return _SCHEME + hmac.new(key, _canonical(manifest), hashlib.sha256).hexdigest()


def verify_manifest(manifest: dict[str, Any], key: bytes, where: Path) -> None:
    """Raise `ModelSignatureError` unless `manifest` carries a valid signature under `key`.

    `where` is the manifest's path, named in the message with how to adopt the model.
    """
    given = manifest.get(SIGNATURE_FIELD)
    if given is None:
        problem = "is not signed"
    elif not isinstance(given, str) or not given.startswith(_SCHEME):
        problem = f"has a signature of an unknown kind (expected {_SCHEME[:-1]})"
    elif hmac.compare_digest(given.encode(), sign_manifest(manifest, key).encode()):
        return
    else:
        problem = "has a signature that does not verify with the configured model key"
    how = _HOW_TO_ADOPT.format(directory=where.parent)
    raise ModelSignatureError(f"{where} {problem}: refusing to load the model; {how}")
