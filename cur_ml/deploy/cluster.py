"""`up`, `down` and `status` of the local cluster (see cur_ml/deploy/__init__.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cur_ml.deploy import models
from cur_ml.deploy.config import ClusterConfig, ClusterError
from cur_ml.deploy.nginx import check_config, nginx_binary, write_config
from cur_ml.deploy.plan import base_env, full_plan, mlflow_plan, region_data, write_plan
from cur_ml.deploy.postgres import create_databases, drop_databases
from cur_ml.deploy.probe import alive, cmdline, http_get, port_free, wait_for
from cur_ml.deploy.status import read_supervisor, status
from cur_ml.deploy.supervisor import stop_group
from cur_ml.deploy.tokens import load_tokens

__all__ = ["down", "running_supervisor", "status", "up"]

Say = Callable[[str], None]
_SUPERVISOR_MODULE = "cur_ml.deploy.supervisor"


def running_supervisor(config: ClusterConfig) -> int | None:
    """The pid of this cluster's supervisor when it runs (checked by its command line, so a
    recycled pid is not taken for it)."""
    record = read_supervisor(config)
    pid = record.get("pid") if record else None
    if pid and alive(pid) and _SUPERVISOR_MODULE in cmdline(pid):
        return pid
    return None


# --------------------------------------------------------------------------- up
def _preflight(config: ClusterConfig) -> None:
    """Everything `up` needs, checked before anything starts."""
    nginx_binary()
    mlflow_plan(config)  # the full MLflow installed, or the install line
    for name, port in config.ports().items():
        if not port_free(port):
            option = "--replica-ports" if name.startswith("replica") else f"--{name}-port"
            raise ClusterError(
                f"port {port} ({name}) is taken on 127.0.0.1: stop what listens there "
                f"(ss -ltnp 'sport = :{port}') or choose another with {option}"
            )
    for region in config.regions:
        models.demo_data(region)  # a region without demo data: named now


def _link_region_data(config: ClusterConfig) -> None:
    """`<state>/data/<region>/appeals.csv` → the region's demo appeals (the worker's base
    data, CUR_ML_BASE_DATA with `{region}`)."""
    for region in config.regions:
        link = Path(str(region_data(config)).replace("{region}", region))
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(models.demo_data(region))


def _start_supervisor(config: ClusterConfig) -> int:
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    config.supervisor_file.unlink(missing_ok=True)
    with open(config.logs_dir / "supervisor.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", _SUPERVISOR_MODULE, str(config.state_dir)],
            env=base_env(),
            cwd=config.state_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `up`, away from the terminal's Ctrl-C
        )
    found = wait_for(lambda: read_supervisor(config).get("pid") or None, 30, 0.1)
    if found != proc.pid:
        raise ClusterError(_with_log(config, "the supervisor did not start", "supervisor"))
    return proc.pid


def _log_tail(config: ClusterConfig, name: str, lines: int = 15) -> str:
    path = config.logs_dir / f"{name}.log"
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _with_log(config: ClusterConfig, message: str, name: str) -> str:
    tail = _log_tail(config, name)
    where = config.logs_dir / f"{name}.log"
    return f"{message}; the end of {where}:\n{tail}" if tail else f"{message} (see {where})"


def _wait_mlflow(config: ClusterConfig, timeout: float) -> None:
    def healthy() -> bool | None:
        status, _, _ = http_get(f"{config.mlflow_url}/health")
        return True if status == 200 else None

    if wait_for(healthy, timeout) is None:
        raise ClusterError(
            _with_log(config, f"mlflow server gave no /health in {timeout:.0f} s", "mlflow")
        )


def _wait_serving(config: ClusterConfig, timeout: float, say: Say) -> None:
    """Every replica ready (/readyz 200), and nginx answering 200 through each of them."""
    deadline = time.monotonic() + timeout
    for index, port in enumerate(config.replica_ports):
        name = config.replica_name(index)

        def ready(port: int = port) -> bool | None:
            status, _, _ = http_get(f"http://127.0.0.1:{port}/readyz")
            return True if status == 200 else None

        if wait_for(ready, max(deadline - time.monotonic(), 1)) is None:
            raise ClusterError(_with_log(config, f"{name} was not ready in {timeout:.0f} s", name))
        say(f"{name} ready on :{port}")
    wanted = {f"127.0.0.1:{port}" for port in config.replica_ports}
    seen: set[str] = set()

    def through_both() -> bool | None:
        status, _, headers = http_get(f"{config.nginx_url}/readyz")
        if status == 200:
            seen.add(headers.get("X-Upstream", "").split(",")[-1].strip())
        return True if wanted <= seen else None

    if wait_for(through_both, max(deadline - time.monotonic(), 1), 0.1) is None:
        missing = ", ".join(sorted(wanted - seen))
        raise ClusterError(_with_log(config, f"nginx never answered through {missing}", "nginx"))
    say("nginx answers /readyz through every replica")


def up(config: ClusterConfig, *, timeout: float = 300.0, say: Say = print) -> dict[str, Any]:
    """Bring the cluster up and wait until nginx serves through every replica; returns the
    status. Refused when it runs already or a port is taken; stopped again if it fails."""
    started = time.monotonic()

    def progress(message: str) -> None:
        say(f"{time.monotonic() - started:5.1f} s  {message}")

    if running_supervisor(config):
        raise ClusterError(
            f"the cluster of {config.state_dir} is up already: `deploy/cluster status`, "
            "or `deploy/cluster down` first"
        )
    _preflight(config)
    created = create_databases(config)
    if created:
        progress(f"created databases {', '.join(created)}")
    config.save()
    load_tokens(config.tokens_file, create=True)
    _link_region_data(config)
    write_config(config)
    check_config(config)
    write_plan(config, mlflow_plan(config))
    pid = _start_supervisor(config)
    progress(f"supervisor {pid}; starting mlflow server on :{config.mlflow_port}")
    try:
        _wait_mlflow(config, timeout)
        progress("mlflow server answers")
        models.migrate_store(config)
        env = models.training_env(config)
        for region in config.regions:
            models.ensure_champion(
                config.mlflow_url,
                region,
                env=env,
                workdir=config.state_dir,
                log_dir=config.logs_dir,
                say=progress,
            )
        write_plan(config, full_plan(config))
        os.kill(pid, signal.SIGHUP)
        progress("starting the replicas, the worker and nginx")
        _wait_serving(config, timeout, progress)
    except BaseException:
        say("up failed: stopping what started (logs stay in " + str(config.logs_dir) + ")")
        down(config, say=lambda _m: None)
        raise
    took = time.monotonic() - started
    say(f"cluster up in {took:.1f} s")
    say(f"  API and console (nginx): {config.nginx_url}  (docs: {config.nginx_url}/docs)")
    for index, port in enumerate(config.replica_ports):
        say(f"  {config.replica_name(index)}: http://127.0.0.1:{port}")
    say(f"  MLflow: {config.mlflow_url}")
    say(f"  tokens: {config.tokens_file} (`deploy/cluster status --show-tokens`)")
    say(f"  logs: {config.logs_dir}/   stop: deploy/cluster down [--purge]")
    result = status(config)
    result["up_seconds"] = round(took, 1)
    return result


# --------------------------------------------------------------------------- down
def down(config: ClusterConfig, *, purge: bool = False, say: Say = print) -> None:
    """Stop every process (SIGTERM, wait, SIGKILL); with `purge` also drop the databases and
    remove the state directory."""
    pid = running_supervisor(config)
    if pid is not None:
        say(f"stopping the supervisor {pid} and its processes")
        # The supervisor stops its children tier by tier, each within its stop_seconds.
        stop_group(pid, stop_seconds=150.0)
    # A supervisor that was killed leaves its children running: stop them here.
    for record in read_supervisor(config).get("processes", []):
        child = record.get("pid")
        if child and alive(child):
            say(f"stopping {record['name']} ({child}), left by a dead supervisor")
            stop_group(child, stop_seconds=20.0)
    if purge:
        dropped = drop_databases(config)
        if dropped:
            say(f"dropped databases {', '.join(dropped)}")
        if config.state_dir.exists():
            shutil.rmtree(config.state_dir)
            say(f"removed {config.state_dir}")
    say("cluster down")
