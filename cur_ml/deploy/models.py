"""What the cluster needs before its replicas start: the store's schema, and a `champion` in
the registry for every region (each region's demo model, trained once when it has none)."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cur_ml.deploy.config import ClusterConfig, ClusterError
from cur_ml.deploy.plan import base_env, console_script, cur_ml_env
from cur_ml.deploy.probe import http_get
from cur_ml.deploy.tokens import load_tokens, token_env

__all__ = [
    "champion",
    "demo_data",
    "ensure_champion",
    "migrate_store",
    "registered_model",
    "training_env",
]


def registered_model(region: str) -> str:
    """The registry's model of a region (the contract: one per region)."""
    return f"cur-ml-{region}"


def demo_data(region: str) -> Path:
    """The region's demo appeals (the contract: spb → datasets/demo, another region →
    datasets/demo_<code>)."""
    from cur_ml.settings import Settings

    path = Settings(region=region, regions=[region]).demo_data
    if not path.is_file():
        raise ClusterError(
            f"region {region}: no demo data at {path}, so no first model can be trained for it; "
            "leave the region out of --regions"
        )
    return path


def migrate_store(config: ClusterConfig) -> None:
    """Bring the store's schema up to date once, here: replicas starting together would
    otherwise all run the migrations at the same moment."""
    from cur_ml.store import make_engine, upgrade

    engine = make_engine(config.sqlalchemy_url(config.store_db))
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def champion(mlflow_url: str, region: str) -> dict[str, Any] | None:
    """The `champion` of the region in the registry at `mlflow_url` (its model version
    record), None when there is none yet; ClusterError when the registry cannot tell."""
    query = urllib.parse.urlencode({"name": registered_model(region), "alias": "champion"})
    url = f"{mlflow_url}/api/2.0/mlflow/registered-models/alias?{query}"
    status, body, _ = http_get(url, timeout=10)
    if status == 200 and isinstance(body, dict):
        return body.get("model_version")
    if status in (400, 404):  # no such model, or no such alias: nothing registered yet
        return None
    raise ClusterError(f"the registry at {mlflow_url} answered {status} for {url}")


def _has_splits(path: Path) -> bool:
    with open(path, encoding="utf-8") as fh:
        return "split" in fh.readline().strip().split(",")


def training_env(config: ClusterConfig) -> dict[str, str]:
    """The environment `cur-ml train` runs in for the cluster: its store, registry and key."""
    return {
        **base_env(),
        **cur_ml_env(config, "train"),
        **token_env(load_tokens(config.tokens_file)),
    }


def ensure_champion(
    mlflow_url: str,
    region: str,
    *,
    env: dict[str, str],
    workdir: Path,
    log_dir: Path,
    say: Callable[[str], None],
) -> None:
    """Train the region's demo model and make it `cur-ml-<region>@champion` in the registry
    at `mlflow_url` (which `env` must name), unless it has a champion already (a later `up`
    keeps whatever was promoted since). Training runs in `workdir`, its log in `log_dir`."""
    found = champion(mlflow_url, region)
    if found is not None:
        say(f"region {region}: champion is {registered_model(region)} v{found.get('version')}")
        return
    data = demo_data(region)
    out = workdir / "train" / region
    argv = [console_script("cur-ml"), "train", "--region", region, "--data", str(data)]
    argv += ["--out", str(out), "--champion"]
    if _has_splits(data):
        argv += ["--split", "train", "--eval-split", "dev"]
    say(f"region {region}: no champion yet; training its demo model on {data}")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"train-{region}.log"
    with open(log, "ab") as out_log:
        done = subprocess.run(argv, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=out_log)
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-10:]
        raise ClusterError(f"training region {region} failed ({log}):\n" + "\n".join(tail))
    summary = json.loads(done.stdout)
    registered = (summary.get("mlflow") or {}).get("registered_version")
    if champion(mlflow_url, region) is None:
        raise ClusterError(
            f"region {region}: trained model {summary.get('model_version')} but the registry "
            f"has no {registered_model(region)}@champion (mlflow: {summary.get('mlflow')}); "
            f"see {log}"
        )
    say(f"region {region}: model {summary.get('model_version')} is champion v{registered}")
