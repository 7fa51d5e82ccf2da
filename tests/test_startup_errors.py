"""Every failure to start is one line on stderr naming the setting, and a non-zero exit; the
traceback only in the debug log (CONTRACT section 2). Real `cur-ml` processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CLI = [sys.executable, "-c", "from cur_ml.cli import main; main()"]
SHORT_TOKEN = "short-secret-value"  # 18 characters: refused, and never printed


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without the caller's CUR_ML_ settings (the model key
    and MLflow switch of tests/conftest.py are kept), a store of its own, and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUR_ML_")}
    for kept in ("CUR_ML_MODEL_KEY", "CUR_ML_MLFLOW_ENABLED"):
        if kept in os.environ:
            env[kept] = os.environ[kept]
    env["CUR_ML_DATABASE_URL"] = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return {**env, **extra}


def _run(tmp_path: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    # cwd: no .env file of the checkout is read
    return subprocess.run(
        [*CLI, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corrupt_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "corrupt.sqlite3"
    path.write_bytes(b"not a database, just bytes\n" * 200)
    return f"sqlite:///{path}"


def _assert_one_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("case", "args", "expected"),
    [
        (
            "postgres_down",
            ["serve", "--port", "0"],
            ["cannot be used", "Connection refused", "CUR_ML_DATABASE_URL"],
        ),
        ("corrupt_sqlite", ["serve", "--port", "0"], ["file is not a database", "DATABASE_URL"]),
        ("short_token", ["serve", "--port", "0"], ["CUR_ML_OPERATOR_TOKEN", "24 characters"]),
        ("bad_value", ["serve", "--port", "0"], ["CUR_ML_WORKERS", "greater than or equal"]),
        (
            "public_open_predict",
            ["serve", "--host", "0.0.0.0", "--port", "0"],
            ["CUR_ML_PREDICT_TOKEN", "--allow-open-predict", "CUR_ML_ALLOW_OPEN_PREDICT"],
        ),
        (
            "postgres_down",
            ["worker", "--once"],
            ["Connection refused", "CUR_ML_DATABASE_URL"],
        ),
    ],
)
def test_a_failure_to_start_is_one_line(tmp_path, demo_model_dir, case, args, expected):
    extra = {
        "postgres_down": {
            "CUR_ML_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/t"
        },
        "corrupt_sqlite": {"CUR_ML_DATABASE_URL": _corrupt_sqlite(tmp_path)},
        "short_token": {"CUR_ML_OPERATOR_TOKEN": SHORT_TOKEN},
        "bad_value": {"CUR_ML_WORKERS": "0"},
        "public_open_predict": {},
    }[case]
    if args[0] == "serve":
        args = [*args, "--model", str(demo_model_dir)]
    line = _assert_one_line(_run(tmp_path, args, _env(tmp_path, **extra)), *expected)
    assert line.startswith("cur-ml: error: ")
    assert SHORT_TOKEN not in line


def test_a_port_in_use_is_one_line(tmp_path, demo_model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["serve", "--port", str(port), "--model", str(demo_model_dir)]
        done = _run(tmp_path, args, _env(tmp_path))
    _assert_one_line(done, f"port {port}", "in use", "CUR_ML_PORT")


def test_the_traceback_is_in_the_debug_log_only(tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/t"
    args = ["--log-level", "debug", "serve", "--port", "0"]
    done = _run(tmp_path, args, _env(tmp_path, CUR_ML_DATABASE_URL=url))
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "OperationalError" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("cur-ml: error: the store at ") and "CUR_ML_DATABASE_URL" in last


def test_allow_open_predict_starts_and_warns_and_locks_metrics(tmp_path, demo_model_dir):
    """Off loopback with --allow-open-predict: it serves, says predict is open, and /metrics
    wants the scraper's token (CUR_ML_METRICS_REQUIRE_TOKEN's default off loopback)."""
    metrics_token = "metrics-token-0123456789abcdef"
    env = _env(
        tmp_path,
        CUR_ML_METRICS_TOKEN=metrics_token,
        CUR_ML_MODEL_POLL_SECONDS="0",
        CUR_ML_LOG_JSON="true",
    )
    args = ["serve", "--host", "0.0.0.0", "--port", "0", "--allow-open-predict"]
    proc = subprocess.Popen(
        [*CLI, *args, "--model", str(demo_model_dir)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        serving = proc.stdout.readline()  # printed once the checks passed, before uvicorn
        assert serving.startswith("cur-ml: serving "), proc.communicate(timeout=30)[1]
        base = serving.split(" on ")[1].split(" ")[0]  # http://127.0.0.1:PORT
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not serving"
            time.sleep(0.05)
        assert httpx.get(f"{base}/metrics").status_code == 401
        bearer = {"Authorization": f"Bearer {metrics_token}"}
        scraped = httpx.get(f"{base}/metrics", headers=bearer)
        assert scraped.status_code == 200 and "cur_ml_" in scraped.text
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=60)
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    warned = [r for r in logs if r["level"] == "WARNING" and "predict is open" in r["msg"]]
    assert len(warned) == 1, err[-3000:]
    assert "0.0.0.0" in warned[0]["msg"] and "CUR_ML_PREDICT_TOKEN" in warned[0]["msg"]
