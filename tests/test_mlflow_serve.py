"""MLflow's own server serves the registry's champion: `mlflow models serve -m
models:/cur-ml-spb@champion`, for real, over HTTP, from a scratch store in a temporary directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

LIFT = (
    "Добрый день! Третий день не работает лифт в нашем подъезде на Невском проспекте, 100. "
    "Пожилые жильцы с девятого этажа не могут выйти из дома. Просим срочно починить."
)
START_TIMEOUT = 120.0


def _mlflow_cli() -> str | None:
    """The venv's `mlflow` (beside the interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / "mlflow"
    return str(beside) if beside.exists() else shutil.which("mlflow")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_for_ping(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # refused, reset or timed out while it starts
            pass
        time.sleep(0.5)
    pytest.fail(f"no answer on {url} after {START_TIMEOUT:.0f} s:\n{log.read_text()}")


def test_mlflow_serves_the_champion(demo_model, tmp_path):
    cli = _mlflow_cli()
    if cli is None:
        pytest.skip("the `mlflow` command is not installed (pip install mlflow)")

    from cur_ml.retrain.champion import CHAMPION, registered
    from cur_ml.settings import Settings
    from cur_ml.tracking import record_run

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings(
        mlflow_enabled=True,
        mlflow_tracking_uri=store,
        mlflow_artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    run = record_run(
        settings,
        kind="train",
        model=demo_model,
        model_dir=demo_model.save(tmp_path / "model"),
        metrics={},
        aliases=(CHAMPION,),
    )
    assert run.get("registered_version"), run
    champion = registered(settings)
    assert champion is not None and champion.tags["model_version"] == demo_model.version

    port = _free_port()
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=store,
        MLFLOW_REGISTRY_URI=store,
        # The pyfunc verifies the model's signed manifest with the key of the environment.
        CUR_ML_MODEL_KEY=os.environ["CUR_ML_MODEL_KEY"],
        # `--env-manager local` starts the scoring server as `bash -c 'exec uvicorn ...'`:
        # the venv's uvicorn must be on PATH (the README's `PATH=$PWD/.venv/bin:$PATH`).
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                cli,
                "models",
                "serve",
                "-m",
                f"models:/cur-ml-spb@{CHAMPION}",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers die with it
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_ping(f"{base}/ping", server, log)

        status, answer = _post(f"{base}/invocations", {"dataframe_records": [{"text": LIFT}]})
        assert status == 200, answer
        # The pyfunc's frame, as JSON: one record per appeal, nested fields flattened
        # (`confidence.reason`), lists kept (`alternatives.reason`).
        (prediction,) = answer["predictions"]
        labels = demo_model.label_sets()
        in_process = demo_model.predict([{"text": LIFT}])[0]
        for head in ("category", "reason", "urgency", "agency"):
            assert prediction[head] in labels[head], (head, prediction[head])
            assert prediction[head] == in_process[head], head
            assert 0.0 <= prediction[f"confidence.{head}"] <= 1.0
            assert prediction[f"alternatives.{head}"][0]["label"] == prediction[head]
        assert (prediction["category"], prediction["reason"]) == (
            "Содержание МКД",
            "Неисправный лифт",
        )
        assert prediction["urgency"] == "high"
        assert prediction["model_version"] == demo_model.version
        assert isinstance(prediction["needs_review"], bool)

        status, answer = _post(f"{base}/invocations", {"dataframe_records": [{"txt": "лифт"}]})
        assert status == 400, answer
        # MLflow's schema enforcement, before our code runs: "Model is missing inputs ['text']".
        assert answer["error_code"] == "INVALID_PARAMETER_VALUE", answer
        assert re.search(r"missing inputs:? \['text'\]", answer["message"]), answer["message"]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=15)
