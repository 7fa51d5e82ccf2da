"""The command line and environment of every process of the cluster (the supervisor's plan).

Each cur-ml process gets its whole configuration from here: the supervisor starts every
process in its own environment less the caller's CUR_ML_* variables, plus the spec's `env`,
so a cluster is the same whoever starts it (a test sets CUR_ML_MLFLOW_ENABLED=false for
itself, which must not reach the replicas). The plan holds no secret and none of the
caller's environment.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from cur_ml.deploy.config import ClusterConfig, ClusterError
from cur_ml.deploy.nginx import nginx_argv

__all__ = [
    "MLFLOW_INSTALL_HINT",
    "ProcessSpec",
    "base_env",
    "console_script",
    "cur_ml_env",
    "full_plan",
    "mlflow_plan",
    "read_plan",
    "region_data",
    "write_plan",
]

MLFLOW_INSTALL_HINT = (
    "`mlflow server` is missing: cur-ml installs only mlflow-skinny, which has no tracking "
    "server. Install the full MLflow (the [mlflow-ui] extra), pinned like everything else: "
    ".venv/bin/pip install -e '.[mlflow-ui]' -c requirements.lock"
)


@dataclass
class ProcessSpec:
    """One supervised process. `env`: its settings on top of the supervisor's environment;
    `secrets`: the supervisor adds the tokens too (they are never written into the plan)."""

    name: str
    role: str  # mlflow, replica, worker, nginx
    argv: list[str]
    env: dict[str, str]
    log: str
    port: int | None = None
    secrets: bool = False
    #: Seconds between SIGTERM and SIGKILL when stopping it.
    stop_seconds: float = 20.0
    cwd: str | None = None


def console_script(name: str) -> str:
    """A console script of the Python running this (the checkout's .venv)."""
    return str(Path(sys.executable).parent / name)


def base_env() -> dict[str, str]:
    """This process's environment without CUR_ML_* (the cluster sets those itself)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CUR_ML_")}


def region_data(config: ClusterConfig) -> Path:
    """`<state>/data/{region}/appeals.csv`: each region's demo appeals linked here, so one
    `{region}` path names every region's base data (spb's demo lives in datasets/demo)."""
    return config.state_dir / "data" / "{region}" / "appeals.csv"


def cur_ml_env(config: ClusterConfig, name: str) -> dict[str, str]:
    """Settings of a cur-ml process `name` (a replica or the worker): the cluster's store,
    registry and regions, and a model cache of its own."""
    own = config.process_dir(name)
    env = {
        "CUR_ML_DATABASE_URL": config.sqlalchemy_url(config.store_db),
        "CUR_ML_MLFLOW_TRACKING_URI": config.mlflow_url,
        "CUR_ML_MLFLOW_ENABLED": "true",
        # Empty: new experiments take the server's artifact root (mlflow-artifacts:/, served
        # by `mlflow server`), never a path of this checkout.
        "CUR_ML_MLFLOW_ARTIFACT_LOCATION": "",
        "CUR_ML_REGION": config.regions[0],
        "CUR_ML_REGIONS": json.dumps(list(config.regions)),
        "CUR_ML_MODEL_URI": "models:/cur-ml-{region}@champion",
        "CUR_ML_MODEL_DIR": str(own / "models" / "{region}"),
        "CUR_ML_MODEL_KEY_FILE": str(config.state_dir / "unused-model.key"),
        "CUR_ML_REGISTRY_POLL_SECONDS": "10",
        "CUR_ML_BASE_DATA": json.dumps([str(region_data(config))]),
        # With an HTTP tracking server MLflow prints "View run ... at: URL" on stdout, which
        # would break the JSON that `cur-ml train` prints there.
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        **config.settings,
    }
    return env


def _mlflow_spec(config: ClusterConfig) -> ProcessSpec:
    try:
        distribution("mlflow")  # the full package; mlflow-skinny alone has no server
    except PackageNotFoundError:
        raise ClusterError(MLFLOW_INSTALL_HINT) from None
    root = config.process_dir("mlflow")
    env = {
        # MLflow's GenAI job runner (huey) is two more processes this cluster never uses.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    argv = [
        console_script("mlflow"),
        "server",
        "--backend-store-uri",
        config.sqlalchemy_url(config.mlflow_db),
        # Artifacts go through the server (mlflow-artifacts:/): replicas and the worker
        # download and upload over HTTP, as they would on other machines.
        "--serve-artifacts",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(config.mlflow_port),
        "--workers",
        "1",
    ]
    return ProcessSpec("mlflow", "mlflow", argv, env, "logs/mlflow.log", config.mlflow_port)


def mlflow_plan(config: ClusterConfig) -> list[ProcessSpec]:
    """The first stage of `up`: the registry alone (models are trained against it)."""
    return [_mlflow_spec(config)]


def full_plan(config: ClusterConfig) -> list[ProcessSpec]:
    """Every process, in start order (stopped in reverse: nginx first, the registry last)."""
    specs = [_mlflow_spec(config)]
    for index, port in enumerate(config.replica_ports):
        name = config.replica_name(index)
        env = cur_ml_env(config, name)
        env["CUR_ML_METRICS_DIR"] = str(config.process_dir(name) / "metrics")
        argv = [console_script("cur-ml"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        # 35 s: uvicorn lets requests in flight finish within 30 s (timeout_graceful_shutdown).
        specs.append(ProcessSpec(name, "replica", argv, env, f"logs/{name}.log", port, True, 35.0))
    specs.append(
        ProcessSpec(
            "worker",
            "worker",
            [console_script("cur-ml"), "worker"],
            cur_ml_env(config, "worker"),
            "logs/worker.log",
            secrets=True,
            # SIGTERM lets a running retrain finish: give it time, then it is killed (the
            # job is marked failed by the next worker and can be asked for again).
            stop_seconds=60.0,
        )
    )
    specs.append(
        ProcessSpec(
            "nginx",
            "nginx",
            nginx_argv(config),
            {},
            "logs/nginx.log",
            config.nginx_port,
            stop_seconds=10.0,
        )
    )
    return specs


def write_plan(config: ClusterConfig, specs: list[ProcessSpec]) -> None:
    """Write the plan the supervisor follows (it reads it again on SIGHUP)."""
    for spec in specs:
        spec.cwd = str(config.state_dir)  # no stray .env or ./mlruns of the caller's cwd
    tmp = config.plan_file.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(s) for s in specs], indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, config.plan_file)


def read_plan(path: Path) -> list[ProcessSpec]:
    return [ProcessSpec(**item) for item in json.loads(path.read_text(encoding="utf-8"))]
