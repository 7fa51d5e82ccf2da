"""Retrain from corrections: build the data, train a challenger, compare, promote or say why not.

The champion is the model in `settings.model_dir`; it is replaced only after the challenger
was trained, evaluated and found not worse on any head — a crash or a rejection anywhere
before that leaves it serving. Every challenger is kept under `models/registry/<version>/`
with its decision.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cur_ml.data import Dataset, load_appeals
from cur_ml.model.bundle import MANIFEST_NAME, MODEL_FILE, RoutingModel, load_model
from cur_ml.model.classifier import HEADS
from cur_ml.model.training import evaluate_model, headline, train_model
from cur_ml.retrain.labels import apply_corrections
from cur_ml.settings import Settings
from cur_ml.tracking import record_run

__all__ = ["RetrainResult", "compare", "load_base", "promote_files", "retrain"]

log = logging.getLogger(__name__)


@dataclass
class RetrainResult:
    """What a retraining run did and why."""

    challenger_version: str
    champion_version: str | None
    promoted: bool
    reasons: list[str]
    metrics: dict[str, dict]
    corrections_applied: int
    operator_rows: int
    training_rows: int
    registry_dir: str
    mlflow: dict = field(default_factory=dict)
    finished_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )

    def to_dict(self) -> dict:
        return asdict(self)


def compare(champion: dict | None, challenger: dict, tolerance: float) -> tuple[bool, list[str]]:
    """Promote unless the challenger is worse than the champion on some head beyond `tolerance`."""
    if champion is None:
        return True, ["no champion yet"]
    reasons, worse = [], False
    for head in HEADS:
        old, new = champion[head]["accuracy"], challenger[head]["accuracy"]
        if new < old - tolerance:
            worse = True
            reasons.append(f"{head} accuracy {new:.4f} < champion {old:.4f} - {tolerance}")
        else:
            reasons.append(f"{head} accuracy {new:.4f} vs champion {old:.4f}: ok")
    return not worse, reasons


def promote_files(source: Path, target: Path) -> None:
    """Put `source`'s model in `target`: the model file first, the manifest last, each atomically.

    A watcher that keys on the manifest therefore never sees a manifest of a file not there yet.
    """
    target.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((source / MANIFEST_NAME).read_text(encoding="utf-8"))
    for name in (manifest.get("model_file", MODEL_FILE), MANIFEST_NAME):
        tmp = target / f".{name}.incoming"
        shutil.copyfile(source / name, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target / name)


def _operator_frame(rows: pd.DataFrame | None) -> pd.DataFrame:
    if rows is None or rows.empty:
        return pd.DataFrame()
    from cur_ml.data import records_to_frame

    return records_to_frame(rows)


def retrain(
    settings: Settings,
    *,
    base: Dataset,
    held_out: pd.DataFrame,
    base_corrections: pd.DataFrame | None = None,
    operator_rows: pd.DataFrame | None = None,
    tolerance: float = 0.01,
    corrected_weight: float = 2.0,
    params: dict | None = None,
    show_progress: bool = True,
) -> RetrainResult:
    """Train a challenger on base data + corrections; promote it into `settings.model_dir` if fit.

    `base_corrections`: events (appeal_id, at, field, new) against `base` and `held_out` ids.
    `operator_rows`: appeals with labels already corrected by operators (from the store).
    """
    frame, changed = base.frame, np.zeros(len(base.frame), dtype=bool)
    applied = 0
    if base_corrections is not None and not base_corrections.empty:
        frame, changed = apply_corrections(frame, base_corrections)
        held_out, _ = apply_corrections(held_out, base_corrections)
        applied = int(changed.sum())
    extra = _operator_frame(operator_rows)
    weights = np.where(changed, corrected_weight, 1.0)
    if not extra.empty:
        frame = pd.concat([frame, extra], ignore_index=True)
        weights = np.r_[weights, np.full(len(extra), corrected_weight)]
    data = Dataset(frame, base.paths, dict(base.skipped))
    manifest_extra = {
        "corrections": {
            "applied": applied + len(extra),
            "base_rows_corrected": applied,
            "operator_rows": len(extra),
        }
    }
    challenger = train_model(
        data,
        params={**settings.training_params(), **(params or {})},
        sample_weight=weights,
        show_progress=show_progress,
        extra_manifest=manifest_extra,
    )
    champion = _current_champion(settings.model_dir)
    challenger_metrics = headline(evaluate_model(challenger, held_out))
    champion_metrics = headline(evaluate_model(champion, held_out)) if champion else None
    promoted, reasons = compare(champion_metrics, challenger_metrics, tolerance)
    registry = settings.model_dir.parent / "registry" / challenger.version
    challenger.manifest["metrics"] = {"held_out": challenger_metrics}
    challenger.manifest["decision"] = {
        "promoted": promoted,
        "reasons": reasons,
        "tolerance": tolerance,
        "champion_version": champion.version if champion else None,
        "champion_metrics": champion_metrics,
    }
    challenger.save(registry)
    if promoted:
        promote_files(registry, settings.model_dir)
    result = RetrainResult(
        challenger_version=challenger.version,
        champion_version=champion.version if champion else None,
        promoted=promoted,
        reasons=reasons,
        metrics={"challenger": challenger_metrics, "champion": champion_metrics or {}},
        corrections_applied=applied + len(extra),
        operator_rows=len(extra),
        training_rows=len(frame),
        registry_dir=str(registry),
    )
    result.mlflow = record_run(
        settings,
        kind="retrain",
        model=challenger,
        model_dir=registry,
        metrics=result.metrics,
        aliases=("challenger", "champion") if promoted else ("challenger",),
        tags={"promoted": str(promoted), "decision": "; ".join(reasons)[:5000]},
    )
    (registry / "decision.json").write_text(
        json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return result


def _current_champion(model_dir: Path) -> RoutingModel | None:
    if not (model_dir / MANIFEST_NAME).exists():
        return None
    try:
        return load_model(model_dir)
    except Exception as exc:  # a broken champion is replaced, not fatal
        log.warning(
            "current champion at %s cannot be loaded (%s); treating as absent", model_dir, exc
        )
        return None


def load_base(settings: Settings) -> tuple[Dataset, pd.DataFrame]:
    """Base training data and held-out data as configured (default: the demo train / dev)."""
    paths = [Path(p) for p in settings.base_data] or [settings.demo_data]
    base = load_appeals(paths, split=settings.base_split)
    held_out = load_appeals(paths, split=settings.holdout_split).frame
    return base, held_out
