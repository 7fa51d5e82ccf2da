"""A model directory turned hostile, as someone who can write it (but not read the key) would:
the model file is a pickle that creates a marker file when unpickled, and the manifest's
sha256 matches it. Tests assert the marker never appears (importable: tests/ is on sys.path).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

from cur_ml.model.bundle import MANIFEST_NAME, MODEL_FILE, read_manifest, write_signed_manifest
from cur_ml.model.signing import SIGNATURE_FIELD

__all__ = ["payload", "plant"]


class _TouchOnLoad:
    """Unpickles into `Path(marker).touch()`: arbitrary code, harmless and observable."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def payload(marker: Path) -> bytes:
    return pickle.dumps(_TouchOnLoad(marker), protocol=5)


def plant(directory: Path, marker: Path, key: bytes | None = None) -> None:
    """Replace `directory`'s model with the payload and point its manifest's sha256 at it;
    sign the manifest with `key`, or leave it unsigned when `key` is None."""
    data = payload(marker)
    (directory / MODEL_FILE).write_bytes(data)
    manifest = {k: v for k, v in read_manifest(directory).items() if k != SIGNATURE_FIELD}
    manifest.update(model_file=MODEL_FILE, model_sha256=hashlib.sha256(data).hexdigest())
    if key is not None:
        write_signed_manifest(directory, manifest, key)
    else:
        (directory / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
