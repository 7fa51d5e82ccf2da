"""`cur-ml worker`: queued jobs are claimed exactly once (SQLite, PostgreSQL), and a worker
killed mid-job leaves the job failed and the champion serving."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from corrections_support import settings_for

from cur_ml.retrain.worker import Worker
from cur_ml.store import make_engine, upgrade
from cur_ml.store.retrain_runs import RetrainRunRepository


@pytest.fixture
def queue(store_url):
    engine = make_engine(store_url)
    upgrade(engine)
    yield store_url, RetrainRunRepository(engine)
    engine.dispose()


def _claim_concurrently(url: str, workers: int, rounds: int) -> list[tuple[str, str]]:
    """`workers` threads, each with its own engine (as separate processes would have),
    claim until the queue is empty; returns (job id, worker) of every claim."""
    start = threading.Barrier(workers)
    claims: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def work(name: str) -> None:
        engine = make_engine(url)
        repo = RetrainRunRepository(engine)
        try:
            start.wait(10)
            for _ in range(rounds):
                run = repo.claim(name)
                if run is not None:
                    claims.append((run.id, name))
        except BaseException as exc:  # reported below, not swallowed by the thread
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return claims


def test_two_workers_one_job_claimed_once(queue):
    url, repo = queue
    for attempt in range(10):  # a race lost once in ten would show
        job = repo.enqueue("api", attempt, {"allow_no_match": True})
        claims = _claim_concurrently(url, workers=2, rounds=1)
        assert [c[0] for c in claims] == [job.id], attempt
        stored = repo.get(job.id)
        assert (stored.status, stored.worker) == ("running", claims[0][1])
        assert stored.options == {"allow_no_match": True} and stored.heartbeat_at is not None
        repo.finish(job.id, "rejected", result={})


def test_many_jobs_many_workers_each_claimed_once(queue):
    url, repo = queue
    jobs = [repo.enqueue("api", i, region=f"r{i}").id for i in range(12)]  # 12 regions
    claims = _claim_concurrently(url, workers=4, rounds=12)
    assert sorted(c[0] for c in claims) == sorted(jobs)  # every job, none twice
    assert repo.claim("late") is None


def test_one_job_per_region_runs_at_a_time(queue):
    url, repo = queue
    first = repo.enqueue("api", 0, region="spb")
    second = repo.enqueue("api", 0, region="spb", only_if_idle=False)
    other = repo.enqueue("api", 0, region="krd")
    assert repo.enqueue("api", 0, region="krd") is None  # krd has a job queued already
    claims = _claim_concurrently(url, workers=3, rounds=3)
    # spb's second job waits while its first runs; krd's runs beside it.
    assert sorted(c[0] for c in claims) == sorted([first.id, other.id])
    assert repo.get(second.id).status == "queued" and repo.active("krd").id == other.id
    repo.finish(first.id, "rejected", result={})
    assert repo.claim("w").id == second.id


def test_a_queued_job_blocks_another_enqueue(queue):
    _, repo = queue
    first = repo.enqueue("api", 0)
    assert first is not None and repo.enqueue("auto", 0) is None
    assert repo.active().id == first.id
    repo.claim("w")
    assert repo.enqueue("api", 0) is None  # running, heartbeat fresh
    repo.finish(first.id, "rejected", result={})
    assert repo.enqueue("api", 0) is not None


def test_a_job_without_heartbeat_is_failed_by_the_next_claim(queue):
    _, repo = queue
    job = repo.enqueue("api", 0)
    assert repo.claim("dead-worker").id == job.id
    quick = RetrainRunRepository(repo.engine, stale_after=timedelta(seconds=0.2))
    assert quick.heartbeat(job.id, "dead-worker")
    assert not quick.heartbeat(job.id, "someone-else")
    time.sleep(0.3)
    assert quick.claim("next") is None
    failed = repo.get(job.id)
    assert failed.status == "failed" and failed.finished_at is not None
    assert "dead-worker stopped: no heartbeat since" in failed.error


_SLOW_WORKER = """
import time
from cur_ml.retrain import jobs
def slow(*args, **kwargs):
    time.sleep(120)
jobs.run_retrain = slow
from cur_ml.cli import main
main()
"""


def _sha(path) -> str:
    return hashlib.sha256((path / "manifest.json").read_bytes()).hexdigest()


def test_a_killed_worker_leaves_its_job_failed_and_the_champion_serving(
    queue, tmp_path, served_dir
):
    url, repo = queue
    before = _sha(served_dir)
    env = {
        **os.environ,
        "CUR_ML_DATABASE_URL": url,
        "CUR_ML_MODEL_DIR": str(served_dir),
        "CUR_ML_MLFLOW_ENABLED": "false",
        "CUR_ML_WORKER_HEARTBEAT_SECONDS": "0.2",
        "CUR_ML_WORKER_STALE_SECONDS": "30",
    }
    job = repo.enqueue("api", 0)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WORKER, "worker", "--once"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while repo.get(job.id).status != "running":
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the worker did not claim the job"
            time.sleep(0.05)
        first_beat = repo.get(job.id).heartbeat_at
        time.sleep(0.6)
        assert repo.get(job.id).heartbeat_at > first_beat  # alive: it beats
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    running = repo.get(job.id)
    assert running.status == "running" and running.worker.startswith("worker@")
    # The next worker to look (here: 1 s of silence is death) records the job as failed.
    settings = settings_for(
        tmp_path, served_dir, database_url=url, worker_stale_seconds=1, base_data=[]
    )
    time.sleep(1.2)
    assert Worker(settings, repo.engine, name="next").run_once() is None
    failed = repo.get(job.id)
    assert failed.status == "failed"
    assert f"worker {running.worker} stopped" in failed.error
    assert _sha(served_dir) == before  # the champion was never touched


def test_worker_once_runs_a_queued_job_and_records_a_refusal(queue, tmp_path, served_dir):
    """Through the real command: no correction matches, so the job fails with the reason."""
    url, repo = queue
    job = repo.enqueue("api", 0)
    env = {
        **os.environ,
        "CUR_ML_DATABASE_URL": url,
        "CUR_ML_MODEL_DIR": str(served_dir),
        "CUR_ML_MLFLOW_ENABLED": "false",
        "CUR_ML_BASE_DATA": json.dumps([str(tmp_path / "nothing.csv")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", "from cur_ml.cli import main; main()", "worker", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("cur-ml: error: data file not found")
    finished = repo.get(job.id)
    assert finished.status == "failed" and "data file not found" in finished.error
    idle = subprocess.run(
        [sys.executable, "-c", "from cur_ml.cli import main; main()", "worker", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert idle.returncode == 0 and json.loads(idle.stdout)["status"] == "idle"
