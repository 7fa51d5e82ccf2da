"""Helpers of the corrections tests (fixtures are in conftest.py): settings, apps, servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from app_support import (  # noqa: F401 - re-exported to the corrections tests
    PG_URL,
    fresh_schema,
    reachable,
    running,
)

from cur_ml.settings import Settings

DEMO = Path(__file__).resolve().parents[2] / "datasets" / "demo" / "appeals.csv"
OPERATOR = "operator-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
OP = {"Authorization": f"Bearer {OPERATOR}"}
ADM = {"Authorization": f"Bearer {ADMIN}"}


def settings_for(tmp: Path, model_dir: Path, **overrides) -> Settings:
    """Settings isolated from the environment: own store, operator/admin tokens, no MLflow."""
    values = {
        "model_dir": model_dir,
        "database_url": f"sqlite:///{tmp / 'store.sqlite3'}",
        "predict_token": None,
        "operator_token": OPERATOR,
        "admin_token": ADMIN,
        "model_poll_seconds": 0,
        "mlflow_enabled": False,
        "retrain_after_corrections": 0,
        "base_data": [],
        "demo_data": DEMO,
        **overrides,
    }
    return Settings(_env_file=None, **values)


def predict(client, appeals: list[dict]) -> list[dict]:
    """Predictions for `appeals`, already recorded in the store."""
    r = client.post("/v1/predict", json={"appeals": appeals})
    assert r.status_code == 200, r.text
    assert client.app.state.writer.flush(10)
    return r.json()["predictions"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`cur-ml serve` in a child process (uvicorn), restartable on the same port and store."""

    def __init__(self, tmp: Path, model_dir: Path, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.env = {
            **os.environ,
            "CUR_ML_DATABASE_URL": database_url,
            "CUR_ML_OPERATOR_TOKEN": OPERATOR,
            "CUR_ML_ADMIN_TOKEN": ADMIN,
            "CUR_ML_PREDICT_TOKEN": "",
            "CUR_ML_MODEL_POLL_SECONDS": "0",
            "CUR_ML_MLFLOW_ENABLED": "false",
            "CUR_ML_RETRAIN_AFTER_CORRECTIONS": "0",
            "CUR_ML_LOG_LEVEL": "WARNING",
        }
        self.code = (
            "from pathlib import Path; from cur_ml.api.server import serve; "
            f"serve(model_dir=Path({str(model_dir)!r}), host='127.0.0.1', port={self.port})"
        )
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 90) -> Server:
        self.starts += 1
        log = open(self.tmp / f"server-{self.starts}.log", "wb")
        # Output to a file, not a pipe: nobody reads it while the load runs.
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.code], env=self.env, stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(self.log()[-3000:])
            assert time.monotonic() < deadline, "server not ready in time"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def log(self) -> str:
        return (self.tmp / f"server-{self.starts}.log").read_text(errors="replace")
