"""Retraining jobs against the store: what one job does (`run_retrain`), and the queue the API,
the console and the automatic trigger put jobs in (`RetrainJobs`).

Jobs run in `cur-ml worker` (see `worker.py`), never inside the API process; `cur-ml retrain`
runs one in its own process at once, or queues it with `--queue`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from cur_ml.errors import RetrainRefusedError
from cur_ml.retrain.base import BaseData, load_base, matching_events
from cur_ml.retrain.champion import Champion, load_champion
from cur_ml.retrain.labels import CORRECTABLE, approved_events, known_labels
from cur_ml.retrain.loop import RetrainResult, retrain
from cur_ml.settings import Settings
from cur_ml.store.corrections import CorrectionRepository
from cur_ml.store.predictions import PredictionRecord
from cur_ml.store.regions import region_is
from cur_ml.store.retrain_runs import RetrainRun, RetrainRunRepository

__all__ = ["RetrainJobs", "RetrainOptions", "operator_rows", "run_retrain"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainOptions:
    """What a job was asked for beyond the settings (stored with the job as JSON)."""

    #: Base data files (absolute paths); empty: `settings.base_data`.
    base_data: tuple[str, ...] = ()
    #: Retrain even when no correction matches the base data.
    allow_no_match: bool = False

    @classmethod
    def of(cls, raw: RetrainOptions | Mapping[str, Any] | None) -> RetrainOptions:
        if isinstance(raw, RetrainOptions):
            return raw
        raw = raw or {}
        return cls(
            base_data=tuple(str(p) for p in raw.get("base_data") or ()),
            allow_no_match=bool(raw.get("allow_no_match", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "base_data": list(self.base_data)}


def operator_rows(
    engine: Engine, events: pd.DataFrame, region: str | None = None, default: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Appeals operators corrected, labelled as they were served, and the events against them;
    only predictions of `region` when given (`default`: the region of rows before regions).

    Returns the frame (keyed by `id` = prediction_id) and the events re-keyed to it.
    """
    api = events[events["prediction_id"].notna()]
    if api.empty:
        return pd.DataFrame(), api
    ids = sorted(set(api["prediction_id"]))
    rows = []
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for rec in conn.execute(
                select(
                    PredictionRecord.prediction_id,
                    PredictionRecord.appeal,
                    *(getattr(PredictionRecord, f) for f in CORRECTABLE),
                ).where(
                    PredictionRecord.prediction_id.in_(chunk),
                    region_is(PredictionRecord.region, region, default),
                )
            ):
                appeal = dict(rec.appeal or {})
                appeal.pop("id", None)
                rows.append(
                    {**appeal, "id": rec.prediction_id, **{f: getattr(rec, f) for f in CORRECTABLE}}
                )
    found = {row["id"] for row in rows}
    keyed = api[api["prediction_id"].isin(found)]  # another region's events stay out
    return pd.DataFrame(rows), keyed.assign(appeal_id=keyed["prediction_id"])


_EVENT = ["appeal_id", "at", "field", "new"]


def _approved(
    engine: Engine, events: pd.DataFrame, base: BaseData, champion: Champion | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The events whose labels training may learn: known to the base data, approved by an
    admin, or (operators' own corrections) in the served model's label sets."""
    from cur_ml.store.label_approvals import LabelApprovalRepository

    served = None
    if champion is not None:
        from cur_ml.retrain.approvals import LabelBook

        served = LabelBook.of(champion.model).labels
    approvals = LabelApprovalRepository(engine).by_field()
    return approved_events(events, known_labels(base.frame), approvals, served)


def _refusal(events: pd.DataFrame, base: BaseData) -> str:
    where = ", ".join(str(p) for p in base.dataset.paths)
    rows = f"{len(base.frame)} rows"
    if events.empty:
        what = "no corrections are stored yet"
    else:
        what = (
            f"none of the {len(events)} stored corrections names an appeal of {where} "
            f"({rows}) or a served prediction"
        )
    return (
        f"retrain refused: {what}; name the data they were made on with --base-data "
        "(CUR_ML_BASE_DATA), or pass --allow-no-match to retrain on the base data alone"
    )


def run_retrain(
    settings: Settings,
    engine: Engine,
    options: RetrainOptions | Mapping[str, Any] | None = None,
    *,
    show_progress: bool = False,
) -> RetrainResult:
    """One retraining from the named base data plus every usable correction in the store.

    Raises `RetrainRefusedError` (nothing trained) without base data, or when no correction
    matches it and `allow_no_match` is not set.
    """
    opts = RetrainOptions.of(options)
    base = load_base([Path(p) for p in opts.base_data] or settings.base_data, settings.base_split)
    champion = load_champion(settings)
    events = CorrectionRepository(engine).events()  # served predictions: of settings.region
    usable, refused = _approved(engine, events, base, champion)
    if any(refused.values()):
        log.warning("corrections with labels never approved, not learned: %s", refused)
    imported = usable[usable["prediction_id"].isna() & usable["appeal_id"].notna()]
    matched = matching_events(imported, base.frame)
    # The holdout's truth takes every imported correction, approved label or not.
    every = events[events["prediction_id"].isna() & events["appeal_id"].notna()]
    truth = matching_events(every, base.frame)
    frame, keyed = operator_rows(engine, usable, settings.region, settings.default_region)
    n_matched = len(matched) + len(keyed)
    if n_matched == 0 and not opts.allow_no_match:
        raise RetrainRefusedError(_refusal(events, base))
    result = retrain(
        settings,
        base=base,
        base_corrections=matched[_EVENT] if len(matched) else None,
        truth_corrections=truth[_EVENT] if len(truth) else None,
        operator_rows=frame if not frame.empty else None,
        operator_events=keyed[_EVENT] if len(keyed) else None,
        corrections_matched=n_matched,
        show_progress=show_progress,
        champion=champion,
    )
    result.labels_refused = refused
    return result


class RetrainJobs:
    """The job queue as the API and the console see it: enqueue, look, never run.

    `on_promoted` is kept for callers of the in-process era and not called: a worker
    promotes by moving the registry alias and refreshing the model directory, which the
    service watches (`CUR_ML_MODEL_POLL_SECONDS`) or polls (`CUR_ML_REGISTRY_POLL_SECONDS`).
    """

    def __init__(
        self, settings: Settings, engine: Engine, on_promoted: Callable[[], None] | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.runs = RetrainRunRepository(
            engine,
            stale_after=timedelta(seconds=settings.worker_stale_seconds),
            default_region=settings.default_region,
        )
        self.on_promoted = on_promoted

    @property
    def busy(self) -> bool:
        """A job is queued or running (in any worker sharing the store)."""
        return self.current() is not None

    def abandon_stale(self, started_before: datetime | None = None) -> int:
        """Jobs whose worker stopped beating are recorded as failed (judged by heartbeat: a
        live worker's job is never touched; `started_before` is unused)."""
        count = self.runs.fail_stale()
        if count:
            log.warning("%d retrain job(s) of a stopped worker marked failed", count)
        return count

    def current(self, region: str | None = None) -> RetrainRun | None:
        """The job (of `region`; None: of any) queued or in progress, if any."""
        return self.runs.active(region)

    def start(
        self,
        trigger: str,
        options: RetrainOptions | Mapping[str, Any] | None = None,
        region: str | None = None,
    ) -> RetrainRun | None:
        """Queue a job of `region` (None: the default one) for `cur-ml worker`; None when one
        of that region is queued or running already."""
        self.runs.fail_stale()
        seen = CorrectionRepository(self.engine).last_id()
        options_dict = RetrainOptions.of(options).to_dict()
        return self.runs.enqueue(trigger, seen, options_dict, region=region)

    def maybe_start_auto(self) -> RetrainRun | None:
        """Queue a job for each region with enough corrections since its last job (if
        configured); the first job queued, or None."""
        every = self.settings.retrain_after_corrections
        if not every:
            return None
        corrections = CorrectionRepository(self.engine)
        default = self.settings.default_region
        queued = []
        for region in self.settings.all_regions():
            since = self.runs.last_corrections_seen(region)
            if corrections.count(after_id=since, region=region, default=default) >= every:
                queued.append(self.start("auto", region=region))
        return next((run for run in queued if run is not None), None)

    def wait(self, run_id: str, timeout: float = 600.0, poll: float = 0.2) -> RetrainRun | None:
        """The job once it is finished (None if it is not after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.runs.get(run_id)
            if run is not None and run.status not in ("queued", "running"):
                return run
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll)
