"""The cluster's supervisor on stand-in processes (no PostgreSQL, MLflow or nginx needed): a
killed child is started again and its stragglers go with it; SIGTERM stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cur_ml.deploy.config import ClusterConfig
from cur_ml.deploy.plan import ProcessSpec, write_plan
from cur_ml.deploy.probe import alive
from cur_ml.deploy.status import read_supervisor

# A child that leaves a grandchild in its process group, and writes the grandchild's pid.
_WITH_STRAGGLER = "sleep 600 & echo $! > {pidfile}; exec sleep 600"


def _wait(check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"still not so after {timeout} s"
        time.sleep(0.1)
    return found


def _child(config: ClusterConfig, name: str) -> dict:
    processes = read_supervisor(config).get("processes", [])
    return next((p for p in processes if p["name"] == name), {})


@pytest.fixture
def supervised(tmp_path):
    config = ClusterConfig(state_dir=tmp_path / "state", regions=("spb",))
    config.save()
    specs = [
        ProcessSpec(
            "replica-1",
            "replica",
            ["sh", "-c", _WITH_STRAGGLER.format(pidfile=tmp_path / "straggler.pid")],
            {},
            "logs/replica-1.log",
            stop_seconds=5,
        ),
        ProcessSpec("worker", "worker", ["sleep", "600"], {}, "logs/worker.log", stop_seconds=5),
    ]
    write_plan(config, specs)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cur_ml.deploy.supervisor", str(config.state_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: all(_child(config, name).get("pid") for name in ("replica-1", "worker")))
        yield config, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def test_killed_child_restarts_and_its_stragglers_go(supervised, tmp_path):
    config, _ = supervised
    first = _child(config, "replica-1")
    pidfile = tmp_path / "straggler.pid"
    straggler = int(_wait(lambda: pidfile.exists() and pidfile.read_text().strip()))
    assert alive(straggler)
    pidfile.unlink()
    os.kill(first["pid"], signal.SIGKILL)
    again = _wait(
        lambda: (c := _child(config, "replica-1")).get("pid") not in (None, first["pid"]) and c
    )
    assert again["restarts"] == 1
    assert again["last_exit"] == -signal.SIGKILL
    assert alive(again["pid"])
    _wait(lambda: not alive(straggler))  # killed with its group, not left holding a port
    assert _child(config, "worker")["restarts"] == 0  # the others are left alone


def test_sigterm_stops_every_child(supervised):
    config, proc = supervised
    pids = [p["pid"] for p in read_supervisor(config)["processes"]]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in pids)
    record = read_supervisor(config)
    assert record["state"] == "stopped"
    assert all(p["pid"] is None for p in record["processes"])


def test_plan_holds_no_secret_and_no_caller_setting(tmp_path, monkeypatch):
    from importlib.metadata import PackageNotFoundError, distribution

    from cur_ml.deploy.plan import full_plan
    from cur_ml.deploy.tokens import load_tokens

    try:  # the plan names `mlflow server`, which only the full package has
        distribution("mlflow")
    except PackageNotFoundError:
        pytest.skip("`mlflow server` missing (pip install -e '.[mlflow-ui]' -c requirements.lock)")
    monkeypatch.setenv("CUR_ML_MLFLOW_ENABLED", "false")  # the caller's, as in the tests
    config = ClusterConfig(state_dir=tmp_path / "state")
    config.save()
    tokens = load_tokens(config.tokens_file, create=True)
    write_plan(config, full_plan(config))
    text = Path(config.plan_file).read_text(encoding="utf-8")
    assert not any(value in text for value in tokens.values())
    for spec in json.loads(text):
        if spec["role"] in ("replica", "worker"):
            assert spec["env"]["CUR_ML_MLFLOW_ENABLED"] == "true"
            assert spec["secrets"] is True
