"""What the drills (`drill.py`) do to the local cluster and how they watch it: the supervisor's
record of each process, direct probes of replicas and MLflow, the store's corrections, and the
three actions — SIGKILL a replica, restart MLflow, move a region's `champion` alias."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cur_ml.deploy.config import ClusterConfig, ClusterError

__all__ = [
    "cpu_ticks",
    "kill_replica",
    "open_cluster",
    "processes",
    "promote",
    "registry_refusals",
    "rejoined_after",
    "restart_mlflow",
    "say",
    "stored_corrections",
    "train_candidate",
    "wait_healthy",
]

CLUSTER = Path(__file__).resolve().parent.parent / "deploy" / "cluster"
#: Seconds to wait for a restarted process or a promotion (after the load ended, too).
SETTLE_S = 90.0
POLL_S = 0.1


# --------------------------------------------------------------------------- the cluster
def say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def open_cluster(state_dir: Path, up_args: list[str]) -> tuple[ClusterConfig, bool]:
    """The running cluster of `state_dir`, brought up first when it does not run; (its
    config, whether it was brought up here)."""
    from cur_ml.deploy.cluster import running_supervisor

    try:
        config = ClusterConfig.load(state_dir)
        if running_supervisor(config):
            return config, False
    except ClusterError:
        pass
    say(f"no cluster runs in {state_dir}: deploy/cluster up")
    # Its progress goes to stderr: stdout is the drill's table.
    subprocess.run(
        [str(CLUSTER), "up", "--state-dir", str(state_dir), *up_args],
        check=True,
        stdout=sys.stderr,
    )
    return ClusterConfig.load(state_dir), True


def processes(config: ClusterConfig, role: str) -> list[dict[str, Any]]:
    """The supervisor's record of every process of `role` (name, pid, port, restarts): the
    same list as `deploy/cluster status --json`, read without probing anything."""
    from cur_ml.deploy.status import read_supervisor

    return [p for p in read_supervisor(config).get("processes", []) if p["role"] == role]


def get(url: str, token: str | None = None) -> tuple[int | None, Any]:
    from cur_ml.deploy.probe import http_get

    status, body, _ = http_get(url, token=token, timeout=2.0)
    return status, body


def wait_until(check: Callable[[], Any], timeout: float) -> Any:
    """The first value of `check()` that is not None, or None after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(POLL_S)
    return None


def healthy(config: ClusterConfig) -> bool:
    """Every replica ready (asked directly), MLflow up, nginx answering."""
    from cur_ml.deploy.probe import alive

    replicas = processes(config, "replica")
    if not replicas or not all(alive(p["pid"]) for p in replicas):
        return False
    urls = [f"http://127.0.0.1:{p['port']}/readyz" for p in replicas]
    urls += [f"{config.mlflow_url}/health", f"{config.nginx_url}/readyz"]
    return all(get(url)[0] == 200 for url in urls)


def wait_healthy(config: ClusterConfig, timeout: float = 180.0) -> None:
    if wait_until(lambda: True if healthy(config) else None, timeout) is None:
        raise SystemExit(f"the cluster of {config.state_dir} is not healthy after {timeout:.0f} s")


def served_version(port: int, region: str, token: str) -> str | None:
    """The model version a replica serves for `region` (None: no answer or not loaded)."""
    status, body = get(f"http://127.0.0.1:{port}/v1/regions", token)
    if status == 200 and isinstance(body, list):
        return next((r.get("model_version") for r in body if r.get("region") == region), None)
    status, body = get(f"http://127.0.0.1:{port}/readyz")  # before /v1/regions: the default
    return body.get("model_version") if status == 200 and isinstance(body, dict) else None


def stored_corrections(config: ClusterConfig, ids: list[int], run_id: str) -> int:
    """How many of the acknowledged correction ids are in the store, with this run's keys."""
    import psycopg

    with psycopg.connect(
        host=config.pg_host, port=config.pg_port, user=config.pg_user, dbname=config.store_db
    ) as conn:
        row = conn.execute(
            "select count(*) from corrections where id = any(%s) and idempotency_key like %s",
            (ids, f"drill-{run_id}-%"),
        ).fetchone()
    return int(row[0]) if row else 0


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


# --------------------------------------------------------------------------- scenarios
def _s(moment: float | None, since: float) -> str:
    return "—" if moment is None else f"{moment - since:.1f}"


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def kill_replica(config: ClusterConfig, act_at: float) -> dict[str, Any]:
    """SIGKILL the first replica at `act_at`; when the supervisor's new one was ready."""
    target = processes(config, "replica")[0]
    name, pid, port = target["name"], target["pid"], target["port"]
    sleep_until(act_at)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    say(f"kill: SIGKILL {name} (pid {pid}, :{port})")

    def new_pid() -> int | None:
        found = next((p for p in processes(config, "replica") if p["name"] == name), {})
        return found.get("pid") if found.get("pid") not in (None, pid) else None

    restarted = wait_until(new_pid, SETTLE_S)
    started_at = time.time()
    ready = wait_until(
        lambda: True if get(f"http://127.0.0.1:{port}/readyz")[0] == 200 else None, SETTLE_S
    )
    ready_at = time.time() if ready else None
    say(f"kill: {name} back as pid {restarted}, ready {_s(ready_at, killed_at)} s after the kill")
    return {
        "replica": name,
        "port": port,
        "killed_pid": pid,
        "killed_at": killed_at,
        "new_pid": restarted,
        "respawned_s": started_at - killed_at if restarted else None,
        "ready_s": ready_at - killed_at if ready_at else None,
    }


def restart_mlflow(config: ClusterConfig, act_at: float) -> dict[str, Any]:
    """SIGTERM to MLflow's process group at `act_at` (the supervisor starts it again); how
    long /health did not answer."""
    pid = processes(config, "mlflow")[0]["pid"]
    sleep_until(act_at)
    os.killpg(pid, signal.SIGTERM)
    stopped_at = time.time()
    say(f"mlflow: SIGTERM to the MLflow server (pid {pid})")

    def new_pid() -> int | None:
        found = processes(config, "mlflow")[0].get("pid")
        return found if found not in (None, pid) else None

    new = wait_until(new_pid, SETTLE_S)  # the old one may answer while it shuts down
    up = new and wait_until(
        lambda: True if get(f"{config.mlflow_url}/health")[0] == 200 else None, SETTLE_S
    )
    back_at = time.time() if up else None
    say(f"mlflow: pid {new} answers /health {_s(back_at, stopped_at)} s after the SIGTERM")
    return {
        "stopped_pid": pid,
        "new_pid": new,
        "stopped_at": stopped_at,
        "away_s": back_at - stopped_at if back_at else None,
    }


def train_candidate(config: ClusterConfig, region: str, workdir: Path) -> dict[str, Any]:
    """A new model of `region` registered (not champion) with the cluster's settings."""
    from cur_ml.deploy.models import demo_data
    from cur_ml.deploy.plan import base_env, console_script, cur_ml_env
    from cur_ml.deploy.tokens import load_tokens, token_env

    data = demo_data(region)
    argv = [console_script("cur-ml"), "train", "--data", str(data), "--out", str(workdir)]
    argv += ["--no-champion", "--region", region]
    with open(data, encoding="utf-8") as fh:
        if "split" in fh.readline().strip().split(","):
            argv += ["--split", "train"]
    env = {
        **base_env(),
        **cur_ml_env(config, "drill"),
        **token_env(load_tokens(config.tokens_file)),
        "CUR_ML_REGION": region,
    }
    done = subprocess.run(argv, env=env, cwd=workdir.parent, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training the candidate failed:\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    version = (summary.get("mlflow") or {}).get("registered_version")
    if version is None:
        raise SystemExit(f"the candidate was not registered: {summary.get('mlflow')}")
    return {"registered_version": str(version), "model_version": summary["model_version"]}


def promote(
    config: ClusterConfig, act_at: float, candidate: dict[str, Any], token: str
) -> dict[str, Any]:
    """Move `cur-ml-<region>@champion` to the candidate at `act_at`; seconds until each
    replica, asked directly every 0.1 s, serves it."""
    from mlflow import MlflowClient

    from cur_ml.deploy.models import registered_model

    region = config.regions[0]
    client = MlflowClient(tracking_uri=config.mlflow_url, registry_uri=config.mlflow_url)
    replicas = processes(config, "replica")
    before = {p["name"]: served_version(p["port"], region, token) for p in replicas}
    sleep_until(act_at)
    client.set_registered_model_alias(
        registered_model(region), "champion", candidate["registered_version"]
    )
    moved_at = time.time()
    say(f"promote: {registered_model(region)}@champion → v{candidate['registered_version']}")
    wanted = candidate["model_version"]
    reached: dict[str, float] = {}
    deadline = moved_at + SETTLE_S
    while len(reached) < len(replicas) and time.time() < deadline:
        for p in replicas:
            if p["name"] not in reached and served_version(p["port"], region, token) == wanted:
                reached[p["name"]] = time.time() - moved_at
        time.sleep(POLL_S)
    all_s = max(reached.values()) if len(reached) == len(replicas) else None
    say(f"promote: every replica on {wanted} after {all_s if all_s is None else round(all_s, 1)} s")
    return {
        "region": region,
        **candidate,
        "served_before": before,
        "moved_at": moved_at,
        "replica_s": reached,
        "all_replicas_s": all_s,
    }


def registry_refusals(config: ClusterConfig, since: dict[Path, int]) -> int:
    """Lines the replicas logged during the run about MLflow refusing them: proof that their
    registry polls met the restart (and served on regardless)."""
    port = f"port={config.mlflow_port}"
    count = 0
    for path, offset in since.items():
        with open(path, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", errors="replace")
        count += sum(1 for line in text.splitlines() if port in line and "refused" in line)
    return count


def rejoined_after(config: ClusterConfig, action: dict[str, Any]) -> float | None:
    """Seconds from the kill until nginx answers from the restarted replica, probed after
    the run (when the replica came back too late for the run's own requests to show it)."""
    from cur_ml.deploy.probe import http_get

    where = f"127.0.0.1:{action['port']}"

    def seen() -> float | None:
        status, _, headers = http_get(f"{config.nginx_url}/readyz", timeout=2.0)
        last = headers.get("X-Upstream", "").rsplit(",", 1)[-1].strip()
        return time.time() - action["killed_at"] if status == 200 and last == where else None

    return wait_until(seen, SETTLE_S)
