"""`cur-ml serve --workers 2`: one set of metrics, whichever worker answers `/metrics`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cur_ml.api.server import _worker_metrics

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).with_name("cur-ml")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(url: str) -> list:
    """The samples of one `/metrics` answer, on a connection of its own."""
    r = httpx.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200
    return [s for f in text_string_to_metric_families(r.text) for s in f.samples]


def total(found: list, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in found
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def per_worker(found: list) -> dict[str, float]:
    return {s.labels["pid"]: s.value for s in found if s.name == "cur_ml_worker_appeals"}


@pytest.fixture
def two_workers(tmp_path, model_a_dir):
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left by an earlier run")
    env = {
        **os.environ,
        "CUR_ML_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "CUR_ML_METRICS_DIR": str(metrics_dir),
        "CUR_ML_MODEL_POLL_SECONDS": "0",
        "CUR_ML_PREDICT_TOKEN": "",
        "CUR_ML_MLFLOW_ENABLED": "false",
        "CUR_ML_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(tmp_path / "server.log", "wb")
    args = ["serve", "--model", str(model_a_dir), "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen([str(CLI), *args], env=env, stdout=log, stderr=log)
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, ready = time.monotonic() + 120, 0
        while ready < 40:  # both workers have loaded the model, not just the first to answer
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "not ready in time"
            try:
                ok = httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ok = False
            ready = ready + 1 if ok else 0
            time.sleep(0.02 if ok else 0.1)
        yield url, metrics_dir
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def test_metrics_of_two_workers_are_one_set(two_workers):
    url, metrics_dir = two_workers
    assert not (metrics_dir / "counter_999999.db").exists()  # emptied at start
    sent = 0
    for _ in range(20):  # new connections until both workers have answered some
        for i in range(10):
            r = httpx.post(
                f"{url}/v1/predict",
                json={"appeals": [{"id": sent, "text": f"Яма во дворе дома {i}"}]},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            sent += 1
        if len(per_worker(samples(url))) == 2 and sent >= 20:
            break
    workers = per_worker(samples(url))
    assert len(workers) == 2 and all(v > 0 for v in workers.values()), workers
    for _ in range(10):  # whichever worker answers, the same totals
        found = samples(url)
        assert total(found, "cur_ml_appeals_total") == sent
        assert total(found, "cur_ml_predictions_total", head="category") == sent
        assert sum(per_worker(found).values()) == sent
        assert total(found, "cur_ml_http_requests_total", route="/v1/predict") == sent
        assert total(found, "cur_ml_model_ready") == 1.0  # livemin: every worker has a model
        assert total(found, "cur_ml_model_info", version="test-a") == 1.0


def test_worker_metrics_dir_is_emptied_and_a_temporary_one_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # restored after the test
    with _worker_metrics(None) as made:
        assert made.is_dir() and not any(made.iterdir())
    assert not made.exists()
    given = tmp_path / "given"
    given.mkdir()
    (given / "gauge_livesum_1.db").write_bytes(b"x")
    with _worker_metrics(given) as used:
        assert used == given and not any(given.iterdir())
    assert given.is_dir()
