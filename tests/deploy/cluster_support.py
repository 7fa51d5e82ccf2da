"""A real local cluster for tests (`deploy/cluster up` on scratch ports, a scratch state
directory and scratch databases), shared by the cluster tests and the drill test.

    with running_cluster(tmp_path_factory.mktemp("cluster"), "mytest") as cluster:
        cluster.predict(["текст"])          # through nginx
        cluster.process("replica-1")        # as `deploy/cluster status --json` lists it

`skip_unless_cluster_parts()` skips (saying what is missing) when PostgreSQL, nginx or the
full MLflow are absent; tests/conftest.py turns that skip into a failure in CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest

from cur_ml.deploy.config import ClusterConfig
from cur_ml.deploy.nginx import NGINX
from cur_ml.deploy.postgres import server_problem

__all__ = [
    "CLUSTER",
    "REGIONS",
    "Cluster",
    "cluster_parts_missing",
    "free_ports",
    "run_cluster",
    "running_cluster",
    "skip_unless_cluster_parts",
]

REPO = Path(__file__).resolve().parents[2]
#: The command under test.
CLUSTER = REPO / "deploy" / "cluster"
#: Regions of the test cluster: the contract's two demo regions.
REGIONS = ("spb", "krd")


def cluster_parts_missing() -> str | None:
    """What the machine lacks for a cluster (None: nothing)."""
    if not os.access(NGINX, os.X_OK):
        return f"nginx not installed ({NGINX}; apt-get install nginx)"
    try:
        distribution("mlflow")
    except PackageNotFoundError:
        return "`mlflow server` missing (pip install -e '.[mlflow-ui]' -c requirements.lock)"
    problem = server_problem(ClusterConfig(regions=("spb",)))
    if problem is not None:
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({problem})"
    return None


def skip_unless_cluster_parts() -> None:
    missing = cluster_parts_missing()
    if missing:
        pytest.skip(f"no local cluster here: {missing}")


def free_ports(count: int) -> list[int]:
    """`count` ports free on 127.0.0.1 now (held open together, so they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def run_cluster(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`deploy/cluster ARGS` (its output captured)."""
    return subprocess.run(
        [str(CLUSTER), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


@dataclass
class Cluster:
    """A cluster brought up by a test."""

    state_dir: Path
    db_prefix: str
    ports: dict[str, int]
    up_output: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['nginx']}"

    @property
    def tokens(self) -> dict[str, str]:
        return json.loads((self.state_dir / "tokens.json").read_text(encoding="utf-8"))

    def status(self) -> dict[str, Any]:
        """`deploy/cluster status --json` (exit 1 only says something is not ready)."""
        done = run_cluster("status", "--state-dir", str(self.state_dir), "--json", timeout=120)
        assert done.returncode in (0, 1), done.stderr
        return json.loads(done.stdout)

    def process(self, name: str) -> dict[str, Any]:
        return next(p for p in self.status()["processes"] if p["name"] == name)

    def predict(
        self, texts: list[str], region: str | None = None, timeout: float = 30
    ) -> tuple[int | None, Any, str]:
        """POST /v1/predict through nginx: (status, body, the replica(s) that answered)."""
        appeals = [{"text": t, **({"region": region} if region else {})} for t in texts]
        request = urllib.request.Request(
            f"{self.url}/v1/predict",
            data=json.dumps({"appeals": appeals}).encode(),
            headers={
                "Authorization": f"Bearer {self.tokens['predict_token']}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.load(response), response.headers["X-Upstream"]
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace"), exc.headers["X-Upstream"]
        except OSError as exc:
            return None, repr(exc), ""

    def wait_until(self, check, timeout: float = 180, interval: float = 0.5):
        """`check()`'s first truthy value; fails the test after `timeout` s (a liveness
        bound, generous: the machine is shared)."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            assert time.monotonic() < deadline, f"still not so after {timeout} s: {check}"
            time.sleep(interval)


@contextmanager
def running_cluster(state_dir: Path, name: str, *, regions=REGIONS) -> Iterator[Cluster]:
    """A cluster up for the block, on scratch ports and databases `cur_ml_test_<name>_<pid>`;
    `down --purge` at the end (when the block has not done it already)."""
    skip_unless_cluster_parts()
    nginx, replica_1, replica_2, mlflow = free_ports(4)
    db_prefix = f"cur_ml_test_{name}_{os.getpid()}"
    done = run_cluster(
        "up",
        "--state-dir",
        str(state_dir),
        "--nginx-port",
        str(nginx),
        "--replica-ports",
        f"{replica_1},{replica_2}",
        "--mlflow-port",
        str(mlflow),
        "--db-prefix",
        db_prefix,
        "--regions",
        ",".join(regions),
    )
    assert done.returncode == 0, f"deploy/cluster up failed:\n{done.stdout}\n{done.stderr}"
    ports = {"nginx": nginx, "replica-1": replica_1, "replica-2": replica_2, "mlflow": mlflow}
    cluster = Cluster(state_dir, db_prefix, ports, done.stdout)
    try:
        yield cluster
    finally:
        if (state_dir / "cluster.json").exists():
            run_cluster("down", "--state-dir", str(state_dir), "--purge")
