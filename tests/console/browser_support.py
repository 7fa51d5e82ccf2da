"""`cur-ml serve` in its own process for the console's browser tests: a free port, the
environment a test names, ready when /readyz says so, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

#: What every browser test's server has unless it says otherwise.
BASE_ENV = {
    "CUR_ML_MODEL_POLL_SECONDS": "0",
    "CUR_ML_PREDICT_TOKEN": "",
    "CUR_ML_MLFLOW_ENABLED": "false",
    "CUR_ML_LOG_JSON": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(**settings: str) -> dict[str, str]:
    """This process's environment with the browser tests' settings, then `settings`."""
    return {**os.environ, **BASE_ENV, **settings}


@contextmanager
def console_server(tmp: Path, model_dir: Path, env: dict[str, str]) -> Iterator[str]:
    """Serve `model_dir` with `env` (see `server_env`); yields the base URL. The server's log
    is `tmp/server.log`, whose tail a failed start shows."""
    port = free_port()
    code = (
        "from pathlib import Path; from cur_ml.api.server import serve; "
        f"serve(model_dir=Path({str(model_dir)!r}), host='127.0.0.1', port={port})"
    )
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the server was not ready in time"
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            yield base
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
