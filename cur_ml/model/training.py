"""Train → evaluate → save: the stages every command and notebook goes through."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cur_ml.data import Dataset, data_hash, load_appeals
from cur_ml.model.bundle import RoutingModel, id_fingerprints, load_model
from cur_ml.model.classifier import AppealClassifier
from cur_ml.model.evaluate import head_metrics, predictions_frame
from cur_ml.model.report import write_report

__all__ = ["ensure_default_model", "evaluate_model", "headline", "train_model"]

_STAGES = ("features", "calibration fit", "calibrate", "final fit")


def train_model(
    data: Dataset,
    *,
    params: dict | None = None,
    sample_weight: np.ndarray | None = None,
    show_progress: bool = True,
    extra_manifest: dict | None = None,
) -> RoutingModel:
    """Fit a new model on `data` and give it a version and manifest."""
    classifier = AppealClassifier(**(params or {}))
    started = time.perf_counter()
    with tqdm(
        total=len(_STAGES), desc="training", unit="stage", disable=not show_progress, leave=False
    ) as bar:

        def step(name: str) -> None:
            bar.set_postfix_str(name)
            if bar.n < bar.total and name != "features":
                bar.update(1)

        classifier.fit(data.frame, sample_weight=sample_weight, progress=step)
        bar.update(bar.total - bar.n)
    sha = data_hash(data.frame)
    manifest = {
        "version": RoutingModel.new_version(sha),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(time.perf_counter() - started, 2),
        "data": {
            "sha256": sha,
            "rows": len(data.frame),
            "paths": [str(p) for p in data.paths],
            "skipped": data.skipped,
        },
        "params": classifier.get_params(),
        "temperatures": {
            "reason": classifier.reason_head_.temperature_,
            "object": classifier.object_head_.temperature_,
            "district": classifier.district_head_.temperature_,
            "agency": classifier.agency_head_.temperature_,
            "free_agency": classifier.free_agency_head_.temperature_,
            "text": classifier.text_temperature_,
        },
        "operating_point": {
            "high_threshold": classifier.high_threshold_,
            "high_miss_cost": classifier.high_miss_cost,
            "review_min_confidence": dict(classifier.review_policy_.min_confidence),
        },
        "metrics": {},
        **(extra_manifest or {}),
    }
    trained_on = id_fingerprints(data.frame["id"]) if "id" in data.frame.columns else None
    return RoutingModel(classifier, manifest, classifier.review_policy_, trained_on)


def evaluate_model(
    model: RoutingModel,
    frame: pd.DataFrame,
    report_dir: Path | None = None,
    predictions: list[dict] | None = None,
) -> dict:
    """Per-head figures on labelled appeals; writes the human report when `report_dir` is set.

    `predictions` of `frame` by `model`, when the caller already has them.
    """
    if predictions is None:
        predictions = model.predict(frame)
    side = predictions_frame(predictions, frame)
    metrics = head_metrics(side)
    known = model.label_sets()
    # Labels the model never saw can only be wrong: say how many there were.
    metrics["unseen_labels"] = {
        head: int((~side[head].isin(labels)).sum()) for head, labels in known.items()
    }
    if report_dir is not None:
        write_report(side, metrics, report_dir)
    return metrics


def ensure_default_model(
    model_dir: Path,
    demo_data: Path,
    *,
    params: dict | None = None,
    show_progress: bool = True,
    key: bytes | None = None,
) -> tuple[RoutingModel, bool]:
    """Load the model at `model_dir`, training it on the demo data first if it is missing.

    `key` signs (and verifies) it; None: the configured key. Returns the model and whether it
    was trained now.
    """
    if (model_dir / "manifest.json").exists():
        return load_model(model_dir, key), False
    train = load_appeals([demo_data], split="train")
    model = train_model(train, params=params, show_progress=show_progress)
    dev = load_appeals([demo_data], split="dev")
    model.manifest["metrics"] = {"dev": headline(evaluate_model(model, dev.frame))}
    model.save(model_dir, key)
    return model, True


def headline(metrics: dict) -> dict:
    """The metrics worth keeping in a manifest (no reliability tables)."""
    return {
        k: ({m: v for m, v in val.items() if m != "reliability"} if isinstance(val, dict) else val)
        for k, val in metrics.items()
    }
