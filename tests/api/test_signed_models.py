"""The service loads only signed models: the manifest watcher and a reload keep the served
model when an unsigned one is dropped into its directory (its payload never runs), and
`serve` refuses to start on an unsigned model or a short key, in one line."""

from __future__ import annotations

import time

import pytest
from tamper_support import plant

from cur_ml.api.server import serve
from cur_ml.errors import ModelKeyError, ModelSignatureError
from cur_ml.settings import Settings

ADMIN_TOKEN = "a-secret-0123456789abcdefgh"


def test_the_watcher_never_loads_an_unsigned_model(app_factory, served_dir, dev_texts, tmp_path):
    marker = tmp_path / "payload-ran"
    with app_factory(served_dir, admin_token=ADMIN_TOKEN, model_poll_seconds=0.1) as client:
        slot = client.app.state.slot
        plant(served_dir, marker)  # valid sha256, no signature
        deadline = time.monotonic() + 20
        while slot.error is None:  # the watcher saw the new manifest and refused it
            assert time.monotonic() < deadline, "the watcher did not look at the new manifest"
            time.sleep(0.05)
        assert "is not signed" in slot.error
        r = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 409 and "is not signed" in r.json()["message"], r.text
        r = client.post("/v1/predict", json={"appeals": [{"text": dev_texts[0]}]})
        assert r.status_code == 200 and r.json()["model_version"] == "test-a"
        assert client.get("/readyz").status_code == 200
    assert not marker.exists()


def _settings(tmp_path, **values) -> Settings:
    return Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", **values)


def test_serve_refuses_an_unsigned_model_in_one_line(served_dir, tmp_path):
    marker = tmp_path / "payload-ran"
    plant(served_dir, marker)
    with pytest.raises(ModelSignatureError) as exc:
        serve(_settings(tmp_path), model_dir=served_dir)
    assert "\n" not in str(exc.value) and "cur-ml model sign" in str(exc.value)
    assert not marker.exists()


def test_serve_refuses_a_short_key(served_dir, tmp_path):
    with pytest.raises(ModelKeyError, match="CUR_ML_MODEL_KEY is 8 characters long"):
        serve(_settings(tmp_path, model_key="too-shrt"), model_dir=served_dir)
