"""`deploy/cluster` for real: one cluster (PostgreSQL databases, mlflow server, 2 replicas, a
worker, nginx) is brought up for the module; the tests predict through it, read its status,
SIGKILL a replica, and take it down with --purge (last)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import psycopg
import pytest
from cluster_support import REGIONS, Cluster, run_cluster, running_cluster

from cur_ml.deploy.probe import alive, port_free

TEXT = "Во дворе дома не вывозят мусор уже неделю, контейнеры переполнены"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    with running_cluster(tmp_path_factory.mktemp("cluster") / "state", "cluster") as running:
        yield running


def _champions(cluster: Cluster) -> dict[str, str]:
    """Region → the model version of the registry's champion, as status reports it."""
    registry = cluster.status()["registry"]
    return {region: registry[region]["model_version"] for region in REGIONS}


def test_up_trained_a_champion_per_region(cluster):
    champions = _champions(cluster)
    assert all(champions.values()), champions
    assert len(set(champions.values())) == len(REGIONS)  # one model per region
    for region in REGIONS:
        assert f"region {region}: model {champions[region]} is champion" in cluster.up_output


def test_predict_through_nginx_answers_with_each_regions_champion(cluster):
    champions = _champions(cluster)
    for region in REGIONS:
        status, body, upstream = cluster.predict([TEXT, TEXT], region=region)
        assert status == 200, body
        assert upstream.startswith("127.0.0.1:")
        versions = {p["model_version"] for p in body["predictions"]}
        assert versions == {champions[region]}
        assert all(p["prediction_id"] for p in body["predictions"])


def test_status_lists_every_process_alive_and_ready(cluster):
    done = run_cluster("status", "--state-dir", str(cluster.state_dir), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    status = cluster.status()
    roles = sorted(p["role"] for p in status["processes"])
    assert roles == ["mlflow", "nginx", "replica", "replica", "worker"]
    assert status["supervisor"]["alive"]
    for process in status["processes"]:
        assert process["alive"], process
        assert process["ready"] is not False, process  # the worker has no port: None
        if process["port"] is not None:
            assert process["port"] == cluster.ports[process["name"]]
    assert "tokens" not in status  # only with --show-tokens
    assert cluster.tokens["predict_token"] not in done.stdout


def test_second_up_and_a_taken_port_are_refused(cluster, tmp_path):
    again = run_cluster("up", "--state-dir", str(cluster.state_dir))
    assert again.returncode == 2
    assert "is up already" in again.stderr
    other = run_cluster(
        "up", "--state-dir", str(tmp_path / "other"), "--nginx-port", str(cluster.ports["nginx"])
    )
    assert other.returncode == 2
    assert f"port {cluster.ports['nginx']} (nginx) is taken" in other.stderr
    assert not (tmp_path / "other").exists()  # refused before anything was made


def test_killed_replica_restarts_and_nginx_keeps_answering(cluster):
    victim = cluster.process("replica-1")
    answers: list[tuple[int | None, str]] = []
    stop = threading.Event()

    def keep_predicting() -> None:
        while not stop.is_set():
            status, _, upstream = cluster.predict([TEXT])
            answers.append((status, upstream))

    load = threading.Thread(target=keep_predicting)
    load.start()
    try:
        cluster.wait_until(lambda: len(answers) >= 5)
        os.kill(victim["pid"], signal.SIGKILL)
        at_kill = len(answers)

        def restarted() -> dict | None:
            now = cluster.process("replica-1")
            return now if now["pid"] != victim["pid"] and now["ready"] else None

        back = cluster.wait_until(restarted)
        # nginx sends it requests again (its fail_timeout over, a request tries it).
        port = f"127.0.0.1:{cluster.ports['replica-1']}"
        after = len(answers)
        cluster.wait_until(lambda: any(u.split(", ")[-1] == port for _, u in answers[after:]))
    finally:
        stop.set()
        load.join()
    assert back["restarts"] >= victim["restarts"] + 1
    assert not alive(victim["pid"])
    assert len(answers) > at_kill  # requests were sent while it was away
    failed = [a for a in answers if a[0] != 200]
    assert failed == [], failed


def test_down_purge_leaves_no_process_and_no_database(cluster):
    status = cluster.status()
    groups = {status["supervisor"]["pid"]} | {p["pid"] for p in status["processes"]}
    done = run_cluster("down", "--state-dir", str(cluster.state_dir), "--purge")
    assert done.returncode == 0, done.stdout + done.stderr
    left = [pid for pid in _pids() if _pgid(pid) in groups and alive(pid)]
    assert left == []
    assert all(port_free(port) for port in cluster.ports.values())
    assert not cluster.state_dir.exists()
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres") as conn:
        found = conn.execute(
            "select datname from pg_database where datname like %s",
            (f"{cluster.db_prefix}%",),
        ).fetchall()
    assert found == []


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
