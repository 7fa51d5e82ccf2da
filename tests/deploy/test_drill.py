"""The failure drills in short form (issue 13, part 4): `benchmarks/drill.py` against a real
local cluster, 15 s of mixed predict and corrections through nginx per scenario — a replica
SIGKILLed, the MLflow server restarted, a new champion promoted — and the issue's goals
checked on what the callers saw."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_support import REGIONS, running_cluster

DRILL = Path(__file__).resolve().parents[2] / "benchmarks" / "drill.py"
SECONDS = 15
RATE = 300


@pytest.fixture(scope="module")
def drill(tmp_path_factory) -> dict[str, dict]:
    """Every scenario run once on one cluster; its row of figures by scenario."""
    tmp = tmp_path_factory.mktemp("drill")
    with running_cluster(tmp / "state", "drill") as cluster:
        out = tmp / "drill.json"
        argv = [sys.executable, str(DRILL), "--state-dir", str(cluster.state_dir)]
        argv += ["--scenario", "all", "--seconds", str(SECONDS), "--rate", str(RATE)]
        done = subprocess.run(
            [*argv, "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, f"drill failed:\n{done.stdout}\n{done.stderr[-4000:]}"
        print(done.stdout)  # the table, shown when a test fails
    return {run["scenario"]: run for run in json.loads(out.read_text())["runs"]}


def _sent_everything(run: dict) -> None:
    """The load really ran: every request planned was sent, predicts of every region and
    corrections among them, and corrections were acknowledged (so 0 lost means something)."""
    assert run["requests"] == SECONDS * RATE
    assert set(run["predicts_by_region"]) == set(REGIONS)
    assert run["corrections_sent"] > 0
    assert run["corrections_acked"] > 0


def test_killed_replica_loses_at_most_half_a_percent_of_predicts_and_no_correction(drill):
    run = drill["kill"]
    _sent_everything(run)
    assert run["failed_predicts_pct"] <= 0.5, run["predict_failures"]
    assert run["corrections_lost"] == 0
    assert run["corrections_stored"] == run["corrections_acked"]
    # The supervisor started it again, it answered /readyz, and nginx sent it requests again.
    assert run["action"]["new_pid"] not in (None, run["action"]["killed_pid"])
    assert run["replica_ready_s"] is not None
    assert run["replica_rejoined_s"] is not None


def test_mlflow_restart_fails_no_predict(drill):
    run = drill["mlflow"]
    _sent_everything(run)
    assert run["action"]["new_pid"] not in (None, run["action"]["stopped_pid"])
    assert run["action"]["away_s"] is not None  # it came back
    assert run["failed_predicts"] == 0, run["predict_failures"]
    assert run["corrections_lost"] == 0


def test_promotion_reaches_every_replica_within_30_s_and_fails_no_request(drill):
    run = drill["promote"]
    _sent_everything(run)
    action = run["action"]
    assert action["region"] == REGIONS[0]
    # Every replica served another version before, and the promoted one after.
    assert all(v != action["model_version"] for v in action["served_before"].values())
    assert set(action["replica_s"]) == {"replica-1", "replica-2"}
    # The product's promise (CUR_ML_REGISTRY_POLL_SECONDS=10 with jitter, then a load):
    # polled every 0.1 s with a 90 s deadline, so a slower cluster shows its real time here.
    assert run["promoted_all_s"] is not None and run["promoted_all_s"] <= 30
    assert run["failed_predicts"] == 0, run["predict_failures"]
    assert run["corrections_failed"] == 0, run["correction_failures"]
    assert run["corrections_lost"] == 0
