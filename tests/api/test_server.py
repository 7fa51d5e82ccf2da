"""`serve(...)` in a real process: uvicorn, readiness, JSON logs, and a clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from cur_ml.api.server import _export, serve
from cur_ml.errors import ModelError
from cur_ml.settings import Settings
from cur_ml.store import make_engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(code: str, env: dict[str, str], port: int, timeout: float = 90) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1].decode()[-3000:])
        assert time.monotonic() < deadline, "not ready in time"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    # uvicorn re-raises the SIGTERM it handled once shut down: -15 is a clean exit here
    assert proc.returncode in (0, -signal.SIGTERM), err.decode()[-2000:]
    return out.decode(), err.decode()


def test_serve_answers_records_and_stops_cleanly(tmp_path, model_a_dir):
    port = free_port()
    db = tmp_path / "store.sqlite3"
    env = {
        "CUR_ML_DATABASE_URL": f"sqlite:///{db}",
        "CUR_ML_MODEL_POLL_SECONDS": "0",
        "CUR_ML_PREDICT_TOKEN": "",
        "CUR_ML_LOG_JSON": "true",
    }
    code = (
        "from pathlib import Path; from cur_ml.api.server import serve; "
        f"serve(model_dir=Path({str(model_a_dir)!r}), host='127.0.0.1', port={port})"
    )
    proc = start(code, env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for i in range(25):
                r = client.post(
                    "/v1/predict", json={"appeals": [{"id": i, "text": "Яма во дворе"}]}
                )
                assert r.status_code == 200
    finally:
        out, err = stop(proc)
    assert f"http://127.0.0.1:{port}" in out
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(rec.get("route") == "/v1/predict" and rec["request_id"] != "-" for rec in logs)
    with make_engine(f"sqlite:///{db}").connect() as conn:
        assert conn.execute(text("select count(*) from predictions")).scalar() == 25


def test_serve_without_arguments_trains_and_serves_the_default_model(tmp_path):
    port = free_port()
    default_dir = tmp_path / "models" / "default"
    env = {
        "CUR_ML_MODEL_DIR": str(default_dir),
        "CUR_ML_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "CUR_ML_PORT": str(port),
        "CUR_ML_MODEL_POLL_SECONDS": "0",
        "CUR_ML_PREDICT_TOKEN": "",
        "CUR_ML_MLFLOW_ENABLED": "false",
    }
    proc = start("from cur_ml.api.server import serve; serve()", env, port)
    try:
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/predict",
            json={"appeals": [{"text": "Во дворе не вывозят мусор"}]},
        )
        assert r.status_code == 200
    finally:
        out, _err = stop(proc)
    assert (default_dir / "manifest.json").is_file()
    assert f"http://127.0.0.1:{port}" in out


def test_serve_refuses_a_missing_model_dir(tmp_path):
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", port=0)
    with pytest.raises(ModelError, match="no model at"):
        serve(settings, model_dir=tmp_path / "nothing")


def test_worker_processes_get_the_same_settings(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("CUR_ML_"):
            monkeypatch.delenv(key)
    settings = Settings(
        _env_file=None,
        model_dir=tmp_path / "m",
        admin_token="s3cret-0123456789abcdefghij",
        predict_token=None,
        max_batch=7,
        coalesce_predictions=False,
        model_poll_seconds=0.5,
    )
    _export(settings)  # what serve() does before starting several workers
    try:
        again = Settings(_env_file=None)
        assert again.model_dump() == settings.model_dump()
        assert again.admin_token.get_secret_value() == "s3cret-0123456789abcdefghij"
        assert again.model_dir == Path(tmp_path / "m")
    finally:
        for key in list(os.environ):
            if key.startswith("CUR_ML_"):
                os.environ.pop(key)
