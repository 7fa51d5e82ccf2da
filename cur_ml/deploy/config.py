"""What a local cluster is: its ports, databases, regions and state directory, kept in
`<state>/cluster.json` by `up` so that `status` and `down` need only the state directory."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cur_ml.settings import REGION_CODE, REPO_ROOT

__all__ = ["DEFAULT_STATE_DIR", "ClusterConfig", "ClusterError"]

#: Where `up` keeps everything it makes (logs, model caches, artifacts, tokens).
DEFAULT_STATE_DIR = REPO_ROOT / "var" / "cluster"
CONFIG_NAME = "cluster.json"
#: A database name prefix: plain lowercase identifier, no quoting surprises in SQL or URLs.
_DB_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
#: Settings the cluster decides itself: `--set` may not override them (it would break the
#: topology: replicas on another store, another model key, ...).
_OWNED_SETTINGS = {
    "CUR_ML_DATABASE_URL",
    "CUR_ML_MLFLOW_TRACKING_URI",
    "CUR_ML_MODEL_URI",
    "CUR_ML_MODEL_DIR",
    "CUR_ML_MODEL_KEY",
    "CUR_ML_REGION",
    "CUR_ML_REGIONS",
    "CUR_ML_HOST",
    "CUR_ML_PORT",
    "CUR_ML_METRICS_DIR",
}


class ClusterError(Exception):
    """A cluster that cannot be brought up, found or stopped; the message says why and what
    to do."""


@dataclass(frozen=True)
class ClusterConfig:
    """One local cluster. Ports are on 127.0.0.1; the databases are `<db_prefix>` (the store)
    and `<db_prefix>_mlflow` (MLflow's tracking and registry) on the PostgreSQL server."""

    state_dir: Path = DEFAULT_STATE_DIR
    nginx_port: int = 8800
    replica_ports: tuple[int, ...] = (8801, 8802)
    mlflow_port: int = 8810
    db_prefix: str = "cur_ml_cluster"
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    #: The first region is the deployment's default one.
    regions: tuple[str, ...] = ("spb", "krd")
    #: Further CUR_ML_* settings of every cur-ml process (`--set NAME=VALUE`).
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir).resolve())
        object.__setattr__(self, "replica_ports", tuple(self.replica_ports))
        object.__setattr__(self, "regions", tuple(self.regions))
        self._check()

    def _check(self) -> None:
        if not _DB_PREFIX.match(self.db_prefix):
            raise ClusterError(
                f"--db-prefix {self.db_prefix!r}: use lowercase letters, digits and _ "
                f"({_DB_PREFIX.pattern})"
            )
        if not self.regions:
            raise ClusterError("--regions: name at least one region, e.g. spb,krd")
        bad = [code for code in self.regions if not REGION_CODE.match(code)]
        if bad:
            raise ClusterError(f"--regions: {bad[0]!r} is not a region code like spb or krd")
        if not self.replica_ports:
            raise ClusterError("--replica-ports: name at least one port")
        ports = self.ports()
        for role, port in ports.items():
            if not 1 <= port <= 65535:
                raise ClusterError(f"{role}: port {port} is not in 1..65535")
        taken_twice = {p for p in ports.values() if list(ports.values()).count(p) > 1}
        if taken_twice:
            raise ClusterError(f"port {min(taken_twice)} is given to two processes")
        for name in self.settings:
            if not name.startswith("CUR_ML_"):
                raise ClusterError(f"--set {name}: only CUR_ML_* settings can be set")
            if name in _OWNED_SETTINGS:
                raise ClusterError(f"--set {name}: the cluster sets it itself")

    # --- names --------------------------------------------------------------------
    def ports(self) -> dict[str, int]:
        """Every listening process's port, by process name."""
        named = {"nginx": self.nginx_port, "mlflow": self.mlflow_port}
        named.update({self.replica_name(i): p for i, p in enumerate(self.replica_ports)})
        return named

    @staticmethod
    def replica_name(index: int) -> str:
        return f"replica-{index + 1}"

    @property
    def store_db(self) -> str:
        return self.db_prefix

    @property
    def mlflow_db(self) -> str:
        return f"{self.db_prefix}_mlflow"

    def sqlalchemy_url(self, database: str) -> str:
        """psycopg (v3) is the installed driver: SQLAlchemy and MLflow both take this form."""
        return f"postgresql+psycopg://{self.pg_user}@{self.pg_host}:{self.pg_port}/{database}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def nginx_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    # --- paths --------------------------------------------------------------------
    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def tokens_file(self) -> Path:
        return self.state_dir / "tokens.json"

    @property
    def plan_file(self) -> Path:
        return self.state_dir / "plan.json"

    @property
    def supervisor_file(self) -> Path:
        """Written by the supervisor: its pid and every child's pid, restarts and exits."""
        return self.state_dir / "supervisor.json"

    def process_dir(self, name: str) -> Path:
        """A process's own directory (model cache, metrics files)."""
        return self.state_dir / name

    # --- persistence --------------------------------------------------------------
    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        tmp = self.state_dir / f".{CONFIG_NAME}.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_dir / CONFIG_NAME)

    @classmethod
    def load(cls, state_dir: Path) -> ClusterConfig:
        """The cluster `up` made in `state_dir`; ClusterError when there is none."""
        path = Path(state_dir).resolve() / CONFIG_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ClusterError(
                f"no cluster in {path.parent} ({CONFIG_NAME} is missing): `deploy/cluster up` "
                "makes one, or pass --state-dir"
            ) from None
        except ValueError as exc:
            raise ClusterError(f"{path} is not valid JSON ({exc})") from None
        data["state_dir"] = path.parent
        return cls(**data)
