"""Retrain from corrections: build the data, train a challenger, judge it, promote or say why not.

The champion is the registry alias `champion` (see `champion.py`; the model directory is a
cache of it). The challenger trains on the base data minus a recent holdout, with corrected
labels replacing the originals and only the rows whose labels really changed weighing more;
both models are judged on that holdout by `gate.decide`. A crash or a rejection anywhere
before promotion leaves the champion serving. Every challenger is kept under
`models/registry/<version>/` with its decision.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cur_ml.data import Dataset
from cur_ml.errors import RetrainRefusedError
from cur_ml.model.bundle import RoutingModel
from cur_ml.model.classifier import HEADS
from cur_ml.model.signing import model_key
from cur_ml.model.taxonomy import Taxonomy
from cur_ml.model.training import evaluate_model, headline, train_model
from cur_ml.retrain.base import BaseData, changed_labels, file_sha256, recent_holdout
from cur_ml.retrain.champion import Champion, load_champion, promote, promote_files
from cur_ml.retrain.gate import Decision, decide
from cur_ml.retrain.labels import CORRECTABLE, apply_corrections
from cur_ml.settings import Settings

__all__ = ["RetrainResult", "promote_files", "retrain"]

log = logging.getLogger(__name__)


@dataclass
class RetrainResult:
    """What a retraining run did and why."""

    challenger_version: str
    champion_version: str | None
    promoted: bool
    #: The decision's reasons in English (the API's `reasons`) and in Russian (the console).
    reasons: list[str]
    metrics: dict[str, dict]
    #: Training rows whose labels corrections changed (the up-weighted rows).
    corrections_applied: int
    operator_rows: int
    training_rows: int
    registry_dir: str
    reasons_ru: list[str] = field(default_factory=list)
    #: Correction events that name an appeal of the base data or a served prediction.
    corrections_matched: int = 0
    #: Training labels changed per field: {category: n, reason: n, urgency: n, agency: n}.
    changed: dict[str, int] = field(default_factory=dict)
    base_data: dict[str, Any] = field(default_factory=dict)
    holdout: dict[str, Any] = field(default_factory=dict)
    #: Every paired test of the gate (`Decision.to_dict`).
    gate: dict[str, Any] = field(default_factory=dict)
    #: Correction events left out per field: their label was never approved.
    labels_refused: dict[str, int] = field(default_factory=dict)
    champion_source: str | None = None
    champion_registered_version: str | None = None
    mlflow: dict = field(default_factory=dict)
    finished_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )

    def to_dict(self) -> dict:
        return asdict(self)


def _corrected(
    frame: pd.DataFrame, events: pd.DataFrame | None, taxonomy: Taxonomy
) -> tuple[pd.DataFrame, np.ndarray, dict[str, int]]:
    """`frame` with the events applied, the rows really changed, the count per field."""
    if events is None or events.empty or frame.empty:
        return frame, np.zeros(len(frame), dtype=bool), dict.fromkeys(CORRECTABLE, 0)
    after, _ = apply_corrections(frame, events, taxonomy=taxonomy)
    changed, per_field = changed_labels(frame, after)
    return after, changed, per_field


def _operator_frame(rows: pd.DataFrame | None) -> pd.DataFrame:
    if rows is None or rows.empty:
        return pd.DataFrame()
    from cur_ml.data import records_to_frame

    return records_to_frame(rows)


def _labels(predictions: list[dict]) -> dict[str, np.ndarray]:
    return {h: np.array([p[h] for p in predictions], dtype=object) for h in HEADS}


def _as_base(base: Dataset | BaseData) -> BaseData:
    if isinstance(base, BaseData):
        return base
    existing = [p for p in base.paths if p.exists()]
    sha = file_sha256(existing) if existing and len(existing) == len(base.paths) else ""
    return BaseData(base, sha, None)


@dataclass
class _Rows:
    """What the challenger trains on and is judged on."""

    train: pd.DataFrame
    #: The base rows of `train` as they were, before corrections (the champion's refit).
    base_train: pd.DataFrame
    weights: np.ndarray
    changed_mask: np.ndarray
    changed: dict[str, int]
    holdout: pd.DataFrame
    holdout_info: dict[str, Any]
    operator_rows: int


def _training_rows(
    settings: Settings,
    data: BaseData,
    held_out: pd.DataFrame | None,
    base_corrections: pd.DataFrame | None,
    holdout_corrections: pd.DataFrame | None,
    operator_rows: pd.DataFrame | None,
    operator_events: pd.DataFrame | None,
    weight: float,
) -> _Rows:
    """Split off the holdout, apply the corrections to both sides, add the operators' rows,
    and weigh more only the rows whose labels really changed."""
    frame = data.frame
    taxonomy = Taxonomy.from_labels(frame)
    trainable = data.trainable()
    if held_out is None:
        mask, holdout_info = recent_holdout(
            frame,
            min_rows=settings.holdout_min_rows,
            max_fraction=settings.holdout_max_fraction,
        )
        train, holdout = frame[trainable & ~mask], frame[mask]
    else:
        train, holdout = frame[trainable], held_out
        holdout_info = {"rows": len(holdout), "by": "given"}
    if train.empty:
        raise RetrainRefusedError("every base row of the split is in the holdout: nothing to train")
    base_train = train.reset_index(drop=True)
    train, changed, per_field = _corrected(base_train, base_corrections, taxonomy)
    holdout, holdout_changed, _ = _corrected(
        holdout.reset_index(drop=True), holdout_corrections, taxonomy
    )
    holdout_info["labels_corrected"] = int(holdout_changed.sum())
    extra = _operator_frame(operator_rows)
    if not extra.empty and operator_events is not None and not operator_events.empty:
        extra, extra_changed, extra_fields = _corrected(extra, operator_events, taxonomy)
        per_field = {f: per_field[f] + extra_fields[f] for f in CORRECTABLE}
    else:
        extra_changed = np.ones(len(extra), dtype=bool)  # given corrected: all of them count
    if not extra.empty:
        train = pd.concat([train, extra], ignore_index=True)
        changed = np.r_[changed, extra_changed]
    return _Rows(
        train=train,
        base_train=base_train,
        weights=np.where(changed, weight, 1.0),
        changed_mask=changed,
        changed=per_field,
        holdout=holdout,
        holdout_info=holdout_info,
        operator_rows=len(extra),
    )


def retrain(
    settings: Settings,
    *,
    base: Dataset | BaseData,
    held_out: pd.DataFrame | None = None,
    base_corrections: pd.DataFrame | None = None,
    truth_corrections: pd.DataFrame | None = None,
    operator_rows: pd.DataFrame | None = None,
    operator_events: pd.DataFrame | None = None,
    corrected_weight: float | None = None,
    corrections_matched: int | None = None,
    params: dict | None = None,
    show_progress: bool = True,
    champion: Champion | str | None = "registry",
) -> RetrainResult:
    """Train a challenger on base data + corrections; promote it if the gate lets it.

    `held_out`: the rows to judge on; None (the default): the newest weeks of `base`, which
    the challenger then does not train on. `base_corrections`: events (appeal_id, at, field,
    new) against `base` ids, learned by the challenger. `truth_corrections`: the events that
    make the holdout's truth (default `base_corrections`) — every correction, including those
    whose label was never approved: approval decides what a model may learn, not what is
    true, and a truth left at the first label favours a champion trained on first labels.
    `operator_rows`: appeals operators corrected, labelled as served,
    with `operator_events` keyed by their `id` (without events the rows count as corrected
    already, and all weigh more). `champion`: "registry" resolves it (see `champion.py`).
    """
    data = _as_base(base)
    weight = settings.corrected_weight if corrected_weight is None else corrected_weight
    truth = base_corrections if truth_corrections is None else truth_corrections
    rows = _training_rows(
        settings, data, held_out, base_corrections, truth, operator_rows, operator_events, weight
    )
    changed_rows = int(rows.changed_mask.sum())
    matched = corrections_matched
    if matched is None:
        matched = (0 if base_corrections is None else len(base_corrections)) + (
            len(operator_events) if operator_events is not None else rows.operator_rows
        )
    log.info(
        "retrain: %d training rows, %d changed by corrections (%s), holdout %d",
        len(rows.train),
        changed_rows,
        rows.changed,
        len(rows.holdout),
    )
    challenger = train_model(
        Dataset(rows.train, data.dataset.paths, dict(data.dataset.skipped)),
        params={**settings.training_params(), **(params or {})},
        sample_weight=rows.weights,
        show_progress=show_progress,
        extra_manifest={
            "corrections": {
                "applied": changed_rows,
                "matched": matched,
                "changed": rows.changed,
                "operator_rows": rows.operator_rows,
                "corrected_weight": weight,
            },
            "base_data": data.describe(),
            "holdout": rows.holdout_info,
        },
    )
    current = load_champion(settings) if champion == "registry" else champion
    reference, seen = _reference(settings, current, rows, data, show_progress)
    rows.holdout_info["champion_seen"] = seen
    decision, metrics = _judge(settings, challenger, reference, rows.holdout)
    if reference is not None and current is not None and reference is not current.model:
        metrics["champion_as_served"] = headline(evaluate_model(current.model, rows.holdout))
        decision.reasons_en.insert(1, _refit_note_en(seen, len(rows.holdout)))
        decision.reasons_ru.insert(1, _refit_note_ru(seen, len(rows.holdout)))
    registry = settings.model_dir.parent / "registry" / challenger.version
    challenger.manifest["metrics"] = {"held_out": metrics["challenger"]}
    challenger.manifest["decision"] = {
        "promoted": decision.promote,
        "reasons": decision.reasons_en,
        "reasons_ru": decision.reasons_ru,
        "champion_version": current.model.version if current else None,
        "champion_metrics": metrics["champion"] or None,
    }
    challenger.save(registry, model_key(settings, create=True))
    result = RetrainResult(
        challenger_version=challenger.version,
        champion_version=current.model.version if current else None,
        promoted=decision.promote,
        reasons=decision.reasons_en,
        reasons_ru=decision.reasons_ru,
        metrics=metrics,
        corrections_applied=changed_rows,
        corrections_matched=matched,
        changed=rows.changed,
        operator_rows=rows.operator_rows,
        training_rows=len(rows.train),
        registry_dir=str(registry),
        base_data=data.describe(),
        holdout=rows.holdout_info,
        gate=decision.to_dict(),
        champion_source=current.source if current else None,
        champion_registered_version=current.registered_version if current else None,
    )
    # The registry first: with MLflow on, a challenger it does not know cannot be champion.
    result.mlflow = _record(
        settings, challenger, registry, result, decision, data, rows.train, rows.holdout
    )
    if decision.promote:
        promote(settings, registry, result.mlflow.get("registered_version"))
    (registry / "decision.json").write_text(
        json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return result


def _reference(
    settings: Settings, current: Champion | None, rows: _Rows, data: BaseData, progress: bool
) -> tuple[RoutingModel | None, int | None]:
    """The model the challenger must not be worse than, and how many holdout appeals the
    champion trained on (None: it cannot tell).

    A champion that trained on the holdout is judged on appeals it has seen, and beats any
    challenger that has not. Then the champion's recipe (its parameters) is refit on the
    challenger's training rows with their labels before the corrections: the comparison
    asks only whether the corrections make a better model.
    """
    if current is None:
        return None, None
    seen = current.model.seen(rows.holdout["id"]) if "id" in rows.holdout.columns else None
    if seen == 0:
        return current.model, seen
    params = current.model.manifest.get("params") or settings.training_params()
    log.info("retrain: the champion saw %s holdout appeals; refitting its recipe", seen)
    refit = train_model(
        Dataset(rows.base_train, data.dataset.paths, dict(data.dataset.skipped)),
        params=params,
        show_progress=progress,
        extra_manifest={"refit_of": current.model.version},
    )
    return refit, seen


def _refit_note_en(seen: int | None, n: int) -> str:
    saw = "may have trained" if seen is None else f"trained on {seen} of the {n}"
    return (
        f"the champion {saw} holdout appeals, so its figures there are optimistic: the "
        "challenger was judged against the champion's recipe refit on the same training rows "
        "without the corrections (the champion's own figures: metrics.champion_as_served)"
    )


def _refit_note_ru(seen: int | None, n: int) -> str:
    saw = "мог видеть" if seen is None else f"обучался на {seen} из {n}"
    return (
        f"чемпион {saw} обращений отложенной выборки, и его оценки на ней завышены: "
        "претендент сравнивался с моделью по рецепту чемпиона, обученной на тех же строках "
        "без исправлений"
    )


def _judge(
    settings: Settings,
    challenger: RoutingModel,
    champion: RoutingModel | None,
    holdout: pd.DataFrame,
) -> tuple[Decision, dict[str, dict]]:
    """Both models on the same holdout: their figures and the gate's decision."""
    new = challenger.predict(holdout)
    metrics = {"challenger": headline(evaluate_model(challenger, holdout, predictions=new))}
    truth = {h: holdout[h].astype(str).to_numpy(dtype=object) for h in HEADS}
    old = None
    if champion is not None:
        predicted = champion.predict(holdout)
        metrics["champion"] = headline(evaluate_model(champion, holdout, predictions=predicted))
        old = _labels(predicted)
    else:
        metrics["champion"] = {}
    decision = decide(
        truth,
        old,
        _labels(new),
        alpha=settings.gate_alpha,
        resamples=settings.gate_resamples,
        seed=settings.gate_seed,
    )
    return decision, metrics


def _record(
    settings: Settings,
    challenger: RoutingModel,
    registry: Path,
    result: RetrainResult,
    decision: Decision,
    data: BaseData,
    training: pd.DataFrame,
    holdout: pd.DataFrame,
) -> dict:
    """The MLflow run, the registered version with the decision in its tags, alias
    `challenger`. Raises when MLflow is on and fails: the champion then stays as it is."""
    if not settings.mlflow_enabled:
        return {}
    from cur_ml.tracking import log_run, set_alias
    from cur_ml.tracking_fields import data_input

    params = {
        "base_data_sha256": data.sha256,
        "base_data_rows": len(data.frame),
        "base_data_paths": ", ".join(str(p) for p in data.dataset.paths),
        "base_data_split": data.split,
        "holdout_rows": len(holdout),
        "holdout_since": result.holdout.get("since"),
        "corrections_matched": result.corrections_matched,
        "corrected_weight": challenger.manifest["corrections"]["corrected_weight"],
        **{f"changed_{f}": n for f, n in result.changed.items()},
    }
    tags = {"promoted": str(decision.promote), **decision.tags()}
    run = log_run(
        settings,
        kind="retrain",
        model=challenger,
        model_dir=registry,
        metrics=result.metrics,
        extra_params=params,
        tags=tags,
        split="holdout",
        role="challenger",
        data=[
            data_input(training, data.dataset.paths, data.split, "train"),
            data_input(holdout, data.dataset.paths, data.split, "held_out"),
        ],
    )
    version = run.get("registered_version")
    if version is None:
        raise RuntimeError("MLflow did not register the challenger; the champion is unchanged")
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri
    )
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model, version, key, value)
    set_alias(settings, "challenger", version)
    return run
