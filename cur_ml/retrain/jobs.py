"""A retraining job against the store: gather corrections, retrain, record the run.

Used by `cur-ml retrain`, `POST /v1/admin/retrain` and the automatic trigger alike.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from cur_ml.retrain.labels import CORRECTABLE
from cur_ml.retrain.loop import RetrainResult, load_base, retrain
from cur_ml.settings import Settings
from cur_ml.store.corrections import CorrectionRepository
from cur_ml.store.db import aware
from cur_ml.store.predictions import PredictionRecord
from cur_ml.store.retrain_runs import RetrainRun, RetrainRunRepository

__all__ = ["RetrainJobs", "operator_rows", "run_retrain"]

log = logging.getLogger(__name__)

#: A run `running` for longer than this is taken for dead (a process killed mid-run that no
#: service start has cleaned up yet) and no longer blocks new runs.
STALE_AFTER = timedelta(hours=6)


def operator_rows(engine: Engine, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Appeals operators corrected, labelled by the prediction, and the events against them.

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
                ).where(PredictionRecord.prediction_id.in_(chunk))
            ):
                appeal = dict(rec.appeal or {})
                appeal.pop("id", None)
                rows.append(
                    {**appeal, "id": rec.prediction_id, **{f: getattr(rec, f) for f in CORRECTABLE}}
                )
    keyed = api.assign(appeal_id=api["prediction_id"])
    return pd.DataFrame(rows), keyed


def run_retrain(
    settings: Settings, engine: Engine, *, show_progress: bool = False
) -> RetrainResult:
    """One retraining from the base data plus every correction in the store."""
    from cur_ml.retrain.labels import apply_corrections

    events = CorrectionRepository(engine).events()
    imported = events[events["prediction_id"].isna() & events["appeal_id"].notna()]
    base, held_out = load_base(settings)
    frame, keyed = operator_rows(engine, events)
    if not frame.empty:
        frame, _ = apply_corrections(frame, keyed)
    return retrain(
        settings,
        base=base,
        held_out=held_out,
        base_corrections=imported[["appeal_id", "at", "field", "new"]] if len(imported) else None,
        operator_rows=frame if not frame.empty else None,
        tolerance=settings.retrain_tolerance,
        corrected_weight=settings.corrected_weight,
        show_progress=show_progress,
    )


class RetrainJobs:
    """Runs at most one retraining at a time in a background thread, recorded in the store.

    `on_promoted` is called (in the job's thread) once a challenger replaced the champion's
    files: the service reloads its model there.
    """

    def __init__(
        self, settings: Settings, engine: Engine, on_promoted: Callable[[], None] | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.runs = RetrainRunRepository(engine)
        self.on_promoted = on_promoted
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def abandon_stale(self, started_before: datetime | None = None) -> int:
        """At start: runs left `running` by a process that died are recorded as failed."""
        count = self.runs.abandon_running(started_before)
        if count:
            log.warning("%d retrain run(s) left running by a stopped process marked failed", count)
        return count

    def current(self) -> RetrainRun | None:
        """The run in progress (here or in another worker on the same store), if any."""
        oldest = datetime.now(UTC) - STALE_AFTER
        fresh = [r for r in self.runs.running() if aware(r.started_at) >= oldest]
        return fresh[0] if fresh else None

    def start(self, trigger: str) -> RetrainRun | None:
        """Start a job; None when one is already running."""
        with self._lock:
            if self.busy or self.current() is not None:
                return None
            seen = CorrectionRepository(self.engine).last_id()
            run = self.runs.start(trigger, seen)
            self._thread = threading.Thread(
                target=self._run, args=(run.id,), name="cur-ml-retrain", daemon=True
            )
            self._thread.start()
            return run

    def maybe_start_auto(self) -> RetrainRun | None:
        """Start a job when enough corrections arrived since the last one (if configured)."""
        every = self.settings.retrain_after_corrections
        if not every or self.busy:
            return None
        fresh = CorrectionRepository(self.engine).count(after_id=self.runs.last_corrections_seen())
        return self.start("auto") if fresh >= every else None

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, run_id: str) -> None:
        try:
            result = run_retrain(self.settings, self.engine)
        except Exception as exc:  # a failed job is recorded; the champion keeps serving
            log.exception("retrain %s failed", run_id)
            self._finish(
                run_id, "failed", error="".join(traceback.format_exception_only(exc)).strip()
            )
            return
        status = "promoted" if result.promoted else "rejected"
        self._finish(run_id, status, result=result.to_dict())
        log.info("retrain %s %s challenger %s", run_id, status, result.challenger_version)
        if result.promoted and self.on_promoted is not None:
            try:
                self.on_promoted()
            except Exception:  # the files are promoted; the model watcher may still load them
                log.exception("the promoted model of retrain %s could not be loaded", run_id)

    def _finish(self, run_id: str, status: str, **values: Any) -> None:
        try:
            self.runs.finish(run_id, status, **values)
        except Exception:  # store down: the run stays `running` until the next start
            log.exception("retrain %s finished (%s) but could not be recorded", run_id, status)
