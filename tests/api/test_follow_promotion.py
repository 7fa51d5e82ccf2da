"""A replica follows a promotion made by another process (this test's, not the replica's):
`cur-ml serve` on `models:/cur-ml-{region}@champion` serves the new champion within 30 s (the
product's promise; it polls the alias every CUR_ML_REGISTRY_POLL_SECONDS ±20%), without a
restart."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cur_ml.model import load_model
from cur_ml.settings import Settings
from cur_ml.tracking import record_run

CLI = Path(sys.executable).with_name("cur-ml")
#: The promise: every replica serves a promoted version within this many seconds.
FOLLOW_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:  # refused while it starts
        return 0, {}


def _predict(base: str, appeal: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}/v1/predict",
        data=json.dumps({"appeals": [appeal]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait(condition, seconds: float, server: subprocess.Popen, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"cur-ml serve exited with {server.returncode}:\n{log.read_text()}")
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    return None


def test_a_replica_serves_a_champion_promoted_by_another_process(
    tmp_path, model_a_dir, model_b_dir
):
    env = {
        **os.environ,
        "CUR_ML_MLFLOW_ENABLED": "true",
        "CUR_ML_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "CUR_ML_MLFLOW_ARTIFACT_LOCATION": (tmp_path / "artifacts").as_uri(),
        "CUR_ML_MODEL_URI": "models:/cur-ml-{region}@champion",
        "CUR_ML_MODEL_DIR": str(tmp_path / "cache" / "{region}"),
        "CUR_ML_REGIONS": '["spb", "krd"]',
        "CUR_ML_REGISTRY_POLL_SECONDS": "1",
        "CUR_ML_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "CUR_ML_LARGE_LANE_PROCESS": "false",
    }
    for name in ("CUR_ML_PREDICT_TOKEN", "CUR_ML_OPERATOR_TOKEN", "CUR_ML_ADMIN_TOKEN"):
        env.pop(name, None)
    first, second = load_model(model_a_dir), load_model(model_b_dir)
    settings = Settings(
        _env_file=None,
        region="spb",
        mlflow_enabled=True,
        mlflow_tracking_uri=env["CUR_ML_MLFLOW_TRACKING_URI"],
        mlflow_artifact_location=env["CUR_ML_MLFLOW_ARTIFACT_LOCATION"],
    )
    record_run(
        settings,
        kind="train",
        model=first,
        model_dir=model_a_dir,
        metrics={},
        aliases=("champion",),
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    try:
        ready = _wait(lambda: _get(f"{base}/readyz")[0] == 200, 120, server, log)
        assert ready, f"not ready after 120 s:\n{log.read_text()}"
        assert _get(f"{base}/readyz")[1]["model_version"] == first.version
        # krd has no champion in the registry: its appeals are 503, spb's are answered.
        status, body = _predict(base, {"text": "Нет воды", "region": "krd"})
        assert status == 503 and "krd" in body["message"]
        assert _predict(base, {"text": "Не работает лифт"})[0] == 200

        # This test's process is not the replica's: the promotion is another process's.
        record_run(
            settings,
            kind="retrain",
            model=second,
            model_dir=model_b_dir,
            metrics={},
            aliases=("champion",),
        )
        moved = time.time()
        served = _wait(
            lambda: _get(f"{base}/readyz")[1].get("model_version") == second.version,
            FOLLOW_SECONDS,
            server,
            log,
        )
        assert served, f"still on {first.version} {FOLLOW_SECONDS:.0f} s after the promotion"
        print(f"serving the promoted version {time.time() - moved:.1f} s after the alias moved")
        status, body = _predict(base, {"text": "Не работает лифт"})
        assert status == 200 and body["predictions"][0]["model_version"] == second.version
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
