"""MLflow records of every train / retrain / evaluate run, and the model registry.

The model is logged as an MLflow pyfunc (so `mlflow models serve` can serve it too) and
registered as `cur-ml`; the aliases `champion` and `challenger` mark the roles, so the
service can load `models:/cur-ml@champion`. MLflow is imported on first use: it is slow
to import and the serving hot path never needs it.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from cur_ml.model.bundle import MANIFEST_NAME, RoutingModel, load_model
from cur_ml.settings import REPO_ROOT, Settings

__all__ = [
    "REGISTERED_MODEL",
    "RoutingPyfunc",
    "git_commit",
    "log_run",
    "record_run",
    "resolve_model_source",
    "set_alias",
]

log = logging.getLogger(__name__)
REGISTERED_MODEL = "cur-ml"


def git_commit() -> str:
    """Commit of the checkout the code runs from ('unknown' outside git)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _mlflow(settings: Settings):
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        location = settings.mlflow_artifact_location
        mlflow.create_experiment(settings.mlflow_experiment, artifact_location=location or None)
    mlflow.set_experiment(settings.mlflow_experiment)
    return mlflow


def _flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{'dev': {'reason': {'accuracy': .8}}} → {'dev_reason_accuracy': .8} (numbers only)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_metrics(value, name + "_"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


class RoutingPyfunc:
    """pyfunc wrapper: a frame of appeals in, a frame of predictions out."""

    def __new__(cls, *args: Any, **kwargs: Any):
        import mlflow.pyfunc

        class _Impl(mlflow.pyfunc.PythonModel):
            def load_context(self, context) -> None:
                self.model = load_model(Path(context.artifacts["model_dir"]))

            def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
                predictions = self.model.predict(model_input)
                return pd.json_normalize(predictions)

        return _Impl()


def log_run(
    settings: Settings,
    *,
    kind: str,
    model: RoutingModel,
    model_dir: Path | None,
    metrics: dict[str, Any],
    report_dir: Path | None = None,
    extra_params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    register: bool = True,
) -> dict[str, str | None]:
    """Record one run; log and register the model when `model_dir` is given.

    Returns the run id and the registered model version (None when not registered).
    """
    mlflow = _mlflow(settings)
    manifest = model.manifest
    with mlflow.start_run(run_name=f"{kind}-{model.version}") as run:
        mlflow.set_tags(
            {
                "kind": kind,
                "model_version": model.version,
                "git_commit": git_commit(),
                "data_sha256": manifest.get("data", {}).get("sha256", ""),
                **(tags or {}),
            }
        )
        params = {**manifest.get("params", {}), **(extra_params or {})}
        params["training_rows"] = manifest.get("data", {}).get("rows")
        params["corrections"] = manifest.get("corrections", {}).get("applied", 0)
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(_flat_metrics(metrics))
        if report_dir is not None and report_dir.exists():
            mlflow.log_artifacts(str(report_dir), artifact_path="report")
        version = None
        if model_dir is not None:
            mlflow.log_artifact(str(model_dir / MANIFEST_NAME))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=RoutingPyfunc(),
                artifacts={"model_dir": str(model_dir)},
                code_paths=[str(Path(__file__).resolve().parent)],
                pip_requirements=_requirements(),
                registered_model_name=REGISTERED_MODEL if register else None,
            )
            version = getattr(info, "registered_model_version", None)
            if version is not None:
                client = mlflow.MlflowClient()
                client.set_model_version_tag(
                    REGISTERED_MODEL, str(version), "model_version", model.version
                )
        return {
            "run_id": run.info.run_id,
            "registered_version": None if version is None else str(version),
        }


def record_run(
    settings: Settings,
    *,
    kind: str,
    model: RoutingModel,
    metrics: dict[str, Any],
    model_dir: Path | None = None,
    report_dir: Path | None = None,
    aliases: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
) -> dict[str, str | None]:
    """`log_run` + aliases when MLflow is enabled; a record, never a gate: failures only warn."""
    if not settings.mlflow_enabled:
        return {}
    try:
        run = log_run(
            settings,
            kind=kind,
            model=model,
            model_dir=model_dir,
            metrics=metrics,
            report_dir=report_dir,
            tags=tags,
        )
        for alias in aliases:
            if run["registered_version"]:
                set_alias(settings, alias, run["registered_version"])
        return run
    except Exception as exc:  # the model is saved already; a tracking outage must not undo that
        log.warning("MLflow logging failed: %s", exc)
        return {"error": str(exc)}


def set_alias(settings: Settings, alias: str, registered_version: str) -> None:
    """Point `models:/cur-ml@<alias>` at a registered version."""
    mlflow = _mlflow(settings)
    mlflow.MlflowClient().set_registered_model_alias(REGISTERED_MODEL, alias, registered_version)


def resolve_model_source(source: str, settings: Settings) -> Path:
    """A model directory for `source`: a path, or a registry URI such as models:/cur-ml@champion."""
    if not source.startswith("models:/"):
        return Path(source)
    mlflow = _mlflow(settings)
    target = Path(tempfile.mkdtemp(prefix="cur-ml-model-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(target)))
    found = next(local.rglob(MANIFEST_NAME), None)
    if found is None:
        raise FileNotFoundError(f"{source} holds no {MANIFEST_NAME}")
    return found.parent


def _requirements() -> list[str]:
    from importlib.metadata import version

    names = [
        "scikit-learn",
        "numpy",
        "scipy",
        "pandas",
        "spacy",
        "pymorphy3",
        "pymorphy3-dicts-ru",
        "joblib",
        "pydantic-settings",
        "tqdm",
    ]
    return [f"{n}=={version(n)}" for n in names]
