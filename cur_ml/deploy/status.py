"""`status`: every process of the cluster (role, pid, port, alive, ready, models served), the
registry's champions, and where the tokens are — as a dict for `--json`, or a table."""

from __future__ import annotations

import json
from typing import Any

from cur_ml.deploy import models
from cur_ml.deploy.config import ClusterConfig, ClusterError
from cur_ml.deploy.probe import alive, http_get
from cur_ml.deploy.tokens import load_tokens

__all__ = ["format_status", "read_supervisor", "status"]


def read_supervisor(config: ClusterConfig) -> dict[str, Any]:
    """What the supervisor last wrote ({} when it never ran here)."""
    try:
        return json.loads(config.supervisor_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def _ready(config: ClusterConfig, role: str, port: int | None) -> bool | None:
    """Whether the process answers as it should (None for the worker: it has no port)."""
    if role == "worker" or port is None:
        return None
    path = "/health" if role == "mlflow" else "/readyz"
    code, _, _ = http_get(f"http://127.0.0.1:{port}{path}")
    return code == 200


def _served_models(config: ClusterConfig, port: int, token: str | None) -> dict[str, str | None]:
    """Region → model version loaded by a replica (None: not loaded yet)."""
    code, body, _ = http_get(f"http://127.0.0.1:{port}/v1/regions", token=token)
    if code == 200 and isinstance(body, list):
        return {item["region"]: item.get("model_version") for item in body}
    # A replica without /v1/regions: its default region's model, from /readyz.
    code, body, _ = http_get(f"http://127.0.0.1:{port}/readyz")
    version = body.get("model_version") if isinstance(body, dict) else None
    return {config.regions[0]: version}


def _registry(config: ClusterConfig) -> dict[str, Any]:
    """Region → the registry's champion (version number and cur-ml model version)."""
    found: dict[str, Any] = {}
    for region in config.regions:
        try:
            record = models.champion(config.mlflow_url, region)
        except ClusterError as exc:
            found[region] = {"error": str(exc)}
            continue
        if record is None:
            found[region] = None
            continue
        tags = {t["key"]: t["value"] for t in record.get("tags", [])}
        found[region] = {
            "registered_version": record.get("version"),
            "model_version": tags.get("model_version"),
        }
    return found


def status(config: ClusterConfig, *, show_tokens: bool = False) -> dict[str, Any]:
    """The cluster as it is now (processes are probed, not taken on the supervisor's word)."""
    record = read_supervisor(config)
    supervisor_pid = record.get("pid")
    token = None
    tokens: dict[str, str] | None = None
    try:
        tokens = load_tokens(config.tokens_file)
        token = tokens["predict_token"]
    except ClusterError:
        pass
    processes = []
    for item in record.get("processes", []):
        pid, role, port = item.get("pid"), item["role"], item.get("port")
        running = alive(pid)
        ready = _ready(config, role, port) if running else False
        entry = {**item, "alive": running, "ready": ready}
        if role == "replica" and entry["ready"]:
            entry["models"] = _served_models(config, port, token)
        processes.append(entry)
    mlflow_up = any(p["role"] == "mlflow" and p["ready"] for p in processes)
    result: dict[str, Any] = {
        "state_dir": str(config.state_dir),
        "supervisor": {
            "pid": supervisor_pid,
            "alive": alive(supervisor_pid),
            "state": record.get("state", "never started"),
        },
        "url": config.nginx_url,
        "mlflow_url": config.mlflow_url,
        "regions": list(config.regions),
        "databases": {"store": config.store_db, "mlflow": config.mlflow_db},
        "tokens_file": str(config.tokens_file),
        "logs_dir": str(config.logs_dir),
        "processes": processes,
        "registry": _registry(config) if mlflow_up else None,
    }
    if show_tokens and tokens is not None:
        result["tokens"] = tokens
    return result


def format_status(result: dict[str, Any]) -> str:
    """The table `deploy/cluster status` prints."""
    sup = result["supervisor"]
    lines = [
        f"cluster {result['state_dir']}: supervisor {sup['pid'] or '-'} "
        f"({'alive' if sup['alive'] else 'not running'}, {sup['state']})",
        f"{'name':<10} {'role':<8} {'pid':>7} {'port':>6} {'alive':<6} {'ready':<6} "
        f"{'restarts':>8}  models",
    ]
    for p in result["processes"]:
        ready = {True: "yes", False: "no", None: "-"}[p["ready"]]
        served = ", ".join(f"{r}={v or 'not loaded'}" for r, v in (p.get("models") or {}).items())
        lines.append(
            f"{p['name']:<10} {p['role']:<8} {p['pid'] or '-':>7} {p['port'] or '-':>6} "
            f"{'yes' if p['alive'] else 'no':<6} {ready:<6} {p['restarts']:>8}  {served}"
        )
    registry = result.get("registry")
    if registry:
        for region, champ in registry.items():
            if champ is None:
                shown = "no champion"
            elif "error" in champ:
                shown = champ["error"]
            else:
                shown = f"v{champ['registered_version']} ({champ['model_version']})"
            lines.append(f"registry: {models.registered_model(region)}@champion = {shown}")
    lines.append(f"API: {result['url']}   MLflow: {result['mlflow_url']}")
    lines.append(f"tokens: {result['tokens_file']}   logs: {result['logs_dir']}")
    if "tokens" in result:
        lines.extend(f"{name}: {value}" for name, value in result["tokens"].items())
    return "\n".join(lines)
