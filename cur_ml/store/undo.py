"""What an operator reviewed, and taking it back for a while afterwards.

History stays append-only: an undo stores one `undo` row per row it takes back (newest
first), each restoring the value in force before that row, under the key `undo_key` of it.
What can be undone is the operator's own latest run of rows on an appeal (with the rows a
corrected reason derived), all within the undo window and with nobody's change after it;
the appeal's review progress is recomputed, so it returns to the queue when a needed field
is open again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cur_ml.errors import StaleVersionError, UndoRefusedError
from cur_ml.store.correction_record import UNDO, CorrectionRecord, taken_back, undo_key
from cur_ml.store.corrections import Follow, writing
from cur_ml.store.db import aware
from cur_ml.store.predictions import PredictionRecord
from cur_ml.store.review_progress import ReviewProgress
from cur_ml.store.review_progress import refresh as refresh_progress
from cur_ml.store.versions import changes_since

__all__ = ["ReviewLog", "Reviewed", "undoable"]


@dataclass(frozen=True)
class Reviewed:
    """One appeal an operator worked on, as their «Проверенные мной» list shows it."""

    record: PredictionRecord
    #: The operator's rows on it (their own and those their reasons derived), oldest first.
    rows: list[CorrectionRecord]
    #: What an undo would take back now (empty: nothing, or the window has passed).
    undoable: list[CorrectionRecord]
    #: Every row of theirs has been taken back.
    undone: bool
    #: Until when the undo stays possible (None when nothing can be undone).
    until: datetime | None
    #: The version of the appeal's labels now (`store.versions`).
    version: int
    #: Every field that needed review is settled.
    done: bool


def _reverted(history: Sequence[CorrectionRecord]) -> set[str]:
    """Keys of the rows an undo took back."""
    return taken_back((r.idempotency_key, r.source) for r in history)


def undoable(
    history: Sequence[CorrectionRecord], operator: str, now: datetime, window: timedelta
) -> list[CorrectionRecord]:
    """The newest rows of `history` that are `operator`'s, not undo rows, not taken back, and
    stored within `window` of `now`, oldest first; stops at the first row that is not."""
    reverted = _reverted(history)
    run: list[CorrectionRecord] = []
    for row in sorted(history, key=lambda r: r.id, reverse=True):
        if (
            row.operator != operator
            or row.source == UNDO
            or row.idempotency_key in reverted
            or aware(row.created_at) < now - window
        ):
            break
        run.append(row)
    return run[::-1]


def _undo_row(row: CorrectionRecord, before: str, operator: str, now: datetime) -> dict:
    return {
        "idempotency_key": undo_key(row.idempotency_key),
        "prediction_id": row.prediction_id,
        "appeal_id": row.appeal_id,
        "field": row.field,
        "old_value": row.new_value,
        "new_value": before,
        "operator": operator,
        "comment": f"отмена исправления №{row.id}",
        "source": UNDO,
        "created_at": now,
    }


class ReviewLog:
    """«Проверенные мной» and its undo, over `corrections`."""

    def __init__(self, engine: Engine, window: timedelta) -> None:
        self.engine = engine
        self.window = window

    def mine(
        self, operator: str, *, limit: int = 50, now: datetime | None = None
    ) -> list[Reviewed]:
        """The appeals `operator` corrected or accepted, the latest first."""
        now = now or datetime.now(UTC)
        last = func.max(CorrectionRecord.id)
        q = (
            select(CorrectionRecord.prediction_id, last)
            .where(
                CorrectionRecord.operator == operator,
                CorrectionRecord.source != UNDO,
                CorrectionRecord.prediction_id.is_not(None),
            )
            .group_by(CorrectionRecord.prediction_id)
            .order_by(last.desc())
            .limit(limit)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            ids = [pid for pid, _ in session.execute(q)]
            if not ids:
                return []
            records = {
                r.prediction_id: r
                for r in session.scalars(
                    select(PredictionRecord).where(PredictionRecord.prediction_id.in_(ids))
                )
            }
            histories: dict[str, list[CorrectionRecord]] = {pid: [] for pid in ids}
            for row in session.scalars(
                select(CorrectionRecord)
                .where(CorrectionRecord.prediction_id.in_(ids))
                .order_by(CorrectionRecord.id)
            ):
                histories[row.prediction_id or ""].append(row)
            done = set(
                session.scalars(
                    select(ReviewProgress.prediction_id).where(
                        ReviewProgress.prediction_id.in_(ids), ReviewProgress.done.is_(True)
                    )
                )
            )
        out = []
        for pid in ids:
            if pid not in records:
                continue
            history = histories[pid]
            reverted = _reverted(history)
            rows = [r for r in history if r.operator == operator and r.source != UNDO]
            run = undoable(history, operator, now, self.window)
            out.append(
                Reviewed(
                    record=records[pid],
                    rows=rows,
                    undoable=run,
                    undone=all(r.idempotency_key in reverted for r in rows),
                    until=aware(run[0].created_at) + self.window if run else None,
                    version=history[-1].id if history else 0,
                    done=pid in done,
                )
            )
        return out

    def undo(
        self,
        prediction_id: str,
        operator: str,
        *,
        base_version: int | None = None,
        follow: Follow | None = None,
        now: datetime | None = None,
    ) -> list[CorrectionRecord]:
        """Take back `operator`'s latest run of rows on the appeal; the undo rows stored.

        Raises `StaleVersionError` when `base_version` is given and the labels changed since,
        `UndoRefusedError` when nothing of theirs can be undone (none in the window, or
        someone else changed the appeal after them)."""
        now = now or datetime.now(UTC)
        with writing(self.engine) as session:
            record = session.scalars(
                select(PredictionRecord)
                .where(PredictionRecord.prediction_id == prediction_id)
                .with_for_update()
            ).first()
            if record is None:
                raise UndoRefusedError(f"no prediction {prediction_id!r} is stored")
            history = changes_since(session, prediction_id, 0)
            version = history[-1].id if history else 0
            if base_version is not None and base_version != version:
                raise StaleVersionError([0], changes_since(session, prediction_id, base_version))
            run = undoable(history, operator, now, self.window)
            if not run:
                raise self._why_not(history, operator, now)
            rows = []
            for row in reversed(run):  # newest first: each restores the value before it
                before = row.old_value if row.old_value is not None else getattr(record, row.field)
                rows.append(_undo_row(row, before, operator, now))
            session.execute(CorrectionRecord.__table__.insert(), rows)
            refresh_progress(session, [prediction_id], follow, now)
            return changes_since(session, prediction_id, version)

    def _why_not(
        self, history: Sequence[CorrectionRecord], operator: str, now: datetime
    ) -> UndoRefusedError:
        reverted = _reverted(history)
        recent = [
            r
            for r in history
            if r.operator == operator
            and r.source != UNDO
            and r.idempotency_key not in reverted
            and aware(r.created_at) >= now - self.window
        ]
        if recent:
            return UndoRefusedError(
                f"the appeal was changed after {operator}'s correction: undo refused",
                changed_after=True,
            )
        minutes = round(self.window.total_seconds() / 60)
        return UndoRefusedError(
            f"{operator} has no correction of this appeal from the last {minutes} min to undo"
        )
