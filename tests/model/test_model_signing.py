"""A model file is code: nothing is unpickled unless the manifest's HMAC verifies with the
model key, the manifest names a plain file of its directory whose sha256 matches, and
scikit-learn's major.minor is the one that trained the model."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from tamper_support import payload, plant

from cur_ml.errors import ModelIntegrityError, ModelKeyError, ModelSignatureError
from cur_ml.model.bundle import (
    MANIFEST_NAME,
    load_model,
    read_manifest,
    sign_directory,
    write_signed_manifest,
)
from cur_ml.model.signing import SIGNATURE_FIELD, model_key
from cur_ml.settings import Settings

CLI = [sys.executable, "-c", "from cur_ml.cli import main; main()"]
OTHER_KEY = b"another-deployment-key-0123456789abcdef"


@pytest.fixture
def key() -> bytes:
    return model_key(Settings())


@pytest.fixture
def model_dir(demo_model_dir, tmp_path) -> Path:
    """A writable copy of the demo model (signed with the test key)."""
    return Path(shutil.copytree(demo_model_dir, tmp_path / "model"))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_signed_model_loads(model_dir, demo_model):
    assert read_manifest(model_dir)[SIGNATURE_FIELD].startswith("hmac-sha256:")
    loaded = load_model(model_dir)
    assert loaded.version == demo_model.version
    assert SIGNATURE_FIELD not in loaded.manifest


@pytest.mark.parametrize("signed_with", ["nothing", "another key", "a forged value"])
def test_a_tampered_model_is_refused_before_its_payload_runs(model_dir, tmp_path, signed_with):
    marker = tmp_path / "payload-ran"
    plant(model_dir, marker, key=OTHER_KEY if signed_with == "another key" else None)
    if signed_with == "a forged value":
        manifest = read_manifest(model_dir)
        manifest[SIGNATURE_FIELD] = "hmac-sha256:" + hashlib.sha256(b"guess").hexdigest()
        (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ModelSignatureError) as exc:
        load_model(model_dir)
    message = _one_line(exc)
    assert ("is not signed" if signed_with == "nothing" else "does not verify") in message
    assert f"cur-ml model sign {model_dir}" in message
    assert not marker.exists()


def test_the_planted_payload_does_run_once_signed(model_dir, tmp_path, key):
    """The control of the test above: the same file, signed with the key, is unpickled (and
    runs), so it is the signature check alone that kept it out."""
    marker = tmp_path / "payload-ran"
    plant(model_dir, marker, key=key)
    with pytest.raises(TypeError):  # the payload unpickles to None, not a model
        load_model(model_dir)
    assert marker.exists()


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_a_model_file_outside_the_directory_is_refused(model_dir, tmp_path, key, where):
    marker = tmp_path / "payload-ran"
    outside = tmp_path / "elsewhere.pkl"
    outside.write_bytes(payload(marker))
    name = str(outside) if where == "absolute" else "../elsewhere.pkl"
    manifest = read_manifest(model_dir)
    manifest.update(model_file=name, model_sha256=hashlib.sha256(outside.read_bytes()).hexdigest())
    write_signed_manifest(model_dir, manifest, key)  # even signed with the right key
    with pytest.raises(ModelIntegrityError) as exc:
        load_model(model_dir)
    assert "is not a plain file name" in _one_line(exc) and repr(name) in str(exc.value)
    with pytest.raises(ModelIntegrityError, match="not a plain file name"):
        sign_directory(model_dir, key)
    assert not marker.exists()


def _with_sklearn(model_dir: Path, key: bytes, trained: str) -> None:
    manifest = read_manifest(model_dir)
    manifest["libraries"]["scikit-learn"] = trained
    write_signed_manifest(model_dir, manifest, key)


def test_another_scikit_learn_minor_is_refused_naming_both(model_dir, key):
    now = version("scikit-learn")
    major, minor = now.split(".")[:2]
    trained = f"{major}.{int(minor) + 1}.0"
    _with_sklearn(model_dir, key, trained)
    with pytest.raises(ModelIntegrityError) as exc:
        load_model(model_dir)
    message = _one_line(exc)
    assert f"scikit-learn {trained}" in message and f"scikit-learn {now}" in message


def test_another_scikit_learn_patch_release_loads(model_dir, key, demo_model):
    major, minor = version("scikit-learn").split(".")[:2]
    _with_sklearn(model_dir, key, f"{major}.{minor}.99")
    assert load_model(model_dir).version == demo_model.version


# ---------------------------------------------------------------------------- the key
def _key_settings(tmp_path: Path, **values) -> Settings:
    return Settings(_env_file=None, model_dir=tmp_path / "models", **{"model_key": None, **values})


def test_the_key_file_is_created_once_with_mode_0600(tmp_path, caplog):
    settings = _key_settings(tmp_path, model_key_file=tmp_path / "var" / "model.key")
    with pytest.raises(ModelKeyError, match="no model signing key"):
        model_key(settings)  # loading never invents a key
    first = model_key(settings, create=True)
    assert len(bytes.fromhex(first.decode())) == 32  # 32 random bytes, as hex
    assert stat.S_IMODE(os.stat(tmp_path / "var" / "model.key").st_mode) == 0o600
    assert "created the model signing key" in caplog.text
    assert model_key(settings, create=True) == first == model_key(settings)


@pytest.mark.parametrize("source", ["setting", "file"])
def test_a_short_key_is_refused_in_one_line(tmp_path, source):
    short = "x" * 31
    if source == "setting":
        settings, names = _key_settings(tmp_path, model_key=short), "CUR_ML_MODEL_KEY"
    else:
        (tmp_path / "model.key").write_text(short + "\n")
        settings = _key_settings(tmp_path, model_key_file=tmp_path / "model.key")
        names = "model.key"
    with pytest.raises(ModelKeyError) as exc:
        model_key(settings, create=True)
    assert names in _one_line(exc) and "at least 32" in str(exc.value)


def test_a_key_file_inside_the_model_directory_is_refused(tmp_path):
    settings = _key_settings(tmp_path, model_key_file=tmp_path / "models" / "model.key")
    with pytest.raises(ModelKeyError, match="inside the model directory"):
        model_key(settings, create=True)
    assert not (tmp_path / "models" / "model.key").exists()


# ----------------------------------------------------------------- cur-ml model sign
def _unsigned(model_dir: Path) -> None:
    manifest = read_manifest(model_dir)
    manifest.pop(SIGNATURE_FIELD)
    (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_cur_ml_model_sign_adopts_a_model_whose_file_matches(model_dir, demo_model):
    _unsigned(model_dir)
    with pytest.raises(ModelSignatureError):
        load_model(model_dir)
    done = subprocess.run([*CLI, "model", "sign", str(model_dir)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model_version"] == demo_model.version
    assert load_model(model_dir).version == demo_model.version


def test_cur_ml_model_sign_refuses_a_file_that_does_not_match(model_dir, tmp_path):
    _unsigned(model_dir)
    (model_dir / "model.pkl").write_bytes(payload(tmp_path / "payload-ran"))
    done = subprocess.run([*CLI, "model", "sign", str(model_dir)], capture_output=True, text=True)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "does not match its manifest" in line
    assert SIGNATURE_FIELD not in read_manifest(model_dir)
    assert not (tmp_path / "payload-ran").exists()


def test_the_bundled_golden_model_is_refused_until_adopted(golden_model_dir):
    bundled = Path(__file__).resolve().parents[1] / "data" / "golden" / "model"
    with pytest.raises(ModelSignatureError, match="is not signed"):
        load_model(bundled)
    assert load_model(golden_model_dir).version == read_manifest(bundled)["version"]
