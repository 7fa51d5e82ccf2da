"""Review by field: which fields of an appeal needed a person, which are settled, and whether
the appeal is done (only then does it leave the review queue).

A field needs review when the model's `review_reasons` name it (`low_confidence:reason`), or
when a reason about the whole appeal points at it (no place found: the agency; a text too
short to read: every field). It is settled once a correction or an acceptance of it stands
(not taken back by an undo); a corrected reason also settles the fields its taxonomy ties
to it, whether their value moved or not. `review_progress` keeps the verdict per prediction,
recomputed from the whole history in the transaction that changes it, so the queue reads
one indexed column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Engine, String, exists, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cur_ml.store.correction_record import DERIVED, CorrectionRecord, is_undo, taken_back
from cur_ml.store.db import Base
from cur_ml.store.predictions import HEAD_FIELDS, PredictionRecord
from cur_ml.store.regions import region_in

__all__ = [
    "ReviewProgress",
    "Verdict",
    "done_ids",
    "histories",
    "live_rows",
    "needed_fields",
    "pending_texts",
    "progress_of",
    "refresh",
    "reviewed",
    "settled_fields",
]

#: reason → the values of the fields that follow it (as `corrections.Follow`).
_Follow = Callable[[str], Mapping[str, str]]
_FOLLOWERS = ("category", "urgency")
#: Reasons about the whole appeal, and the fields they put in doubt.
_APPEAL_ISSUES = {
    "heads_disagree": ("reason", "agency"),
    "unknown_district": ("agency",),
    "place_unknown": ("agency",),
    "place_contradicts_point": ("agency",),
}


class ReviewProgress(Base):
    """Where the review of one prediction stands (a row once it has a correction)."""

    __tablename__ = "review_progress"

    prediction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: Fields that needed review, comma-separated in head order ("" before review by field:
    #: rows that migration 0006 carried over, closed as they were).
    needed: Mapped[str] = mapped_column(String(64))
    settled: Mapped[str] = mapped_column(String(64))
    #: Every needed field is settled: the appeal is out of the review queue.
    done: Mapped[bool] = mapped_column(Boolean, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def needed_fields(needs_review: bool, reasons: Iterable[Any] | None) -> tuple[str, ...]:
    """The fields a person must look at, in head order. A reason that names no field (the
    text is not Russian, too short, only tags; or one this code does not know) puts every
    field in doubt, as does a flagged prediction that gives no reason."""
    if not needs_review:
        return ()
    found: set[str] = set()
    codes = [str(c) for c in reasons or () if c]
    for code in codes:
        kind, _, head = code.partition(":")
        if head in HEAD_FIELDS:
            found.add(head)
        elif kind in _APPEAL_ISSUES:
            found.update(_APPEAL_ISSUES[kind])
        else:
            found.update(HEAD_FIELDS)
    if not codes:
        found.update(HEAD_FIELDS)
    return tuple(h for h in HEAD_FIELDS if h in found)


def live_rows(history: Sequence[CorrectionRecord]) -> list[CorrectionRecord]:
    """The rows still in force, oldest first: without undo rows and the rows they took back."""
    gone = taken_back((r.idempotency_key, r.source) for r in history)
    return [
        r
        for r in sorted(history, key=lambda r: r.id)
        if r.idempotency_key not in gone and not is_undo(r.idempotency_key, r.source)
    ]


def settled_fields(history: Sequence[CorrectionRecord], follow: _Follow | None) -> set[str]:
    """Fields with a correction or an acceptance in force; a reason an operator set also
    settles the fields `follow` ties to it (their value follows it, moved or not)."""
    rows = live_rows(history)
    settled = {r.field for r in rows}
    own_reasons = [r for r in rows if r.field == "reason" and r.source != DERIVED]
    if follow is not None and own_reasons:
        settled.update(f for f in follow(own_reasons[-1].new_value) if f in _FOLLOWERS)
    return settled


class Verdict:
    """What `progress_of` says about one prediction."""

    __slots__ = ("done", "needed", "settled")

    def __init__(self, needed: tuple[str, ...], settled: set[str], done: bool) -> None:
        self.needed, self.settled, self.done = needed, settled, done

    @property
    def missing(self) -> tuple[str, ...]:
        """Needed fields still open, in head order."""
        return tuple(f for f in self.needed if f not in self.settled)


def progress_of(
    record: PredictionRecord, history: Sequence[CorrectionRecord], follow: _Follow | None
) -> Verdict:
    needed = needed_fields(
        bool(record.needs_review), (record.prediction or {}).get("review_reasons")
    )
    settled = settled_fields(history, follow)
    return Verdict(needed, settled, all(f in settled for f in needed))


def _upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (prediction_id) DO UPDATE for the dialect."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(ReviewProgress)
    return stmt.on_conflict_do_update(
        index_elements=["prediction_id"],
        set_={c: stmt.excluded[c] for c in ("needed", "settled", "done", "updated_at")},
    )


def _histories(session: Session, ids: Sequence[str]) -> dict[str, list[CorrectionRecord]]:
    out: dict[str, list[CorrectionRecord]] = {}
    for row in session.scalars(
        select(CorrectionRecord)
        .where(CorrectionRecord.prediction_id.in_(ids))
        .order_by(CorrectionRecord.id)
    ):
        out.setdefault(row.prediction_id or "", []).append(row)
    return out


def histories(engine: Engine, ids: Sequence[str]) -> dict[str, list[CorrectionRecord]]:
    """Every correction of each of `ids` (stored predictions or not), oldest first."""
    wanted = sorted(set(ids))
    out: dict[str, list[CorrectionRecord]] = {pid: [] for pid in wanted}
    with Session(engine, expire_on_commit=False) as session:
        for start in range(0, len(wanted), 500):
            out.update(_histories(session, wanted[start : start + 500]))
    return out


def pending_texts(
    engine: Engine,
    limit: int,
    regions: Sequence[str] | None = None,
    default_region: str | None = None,
) -> dict[str, str]:
    """prediction_id → text of the newest `limit` appeals waiting for review (of `regions`
    only when given; rows without a region are `default_region`'s)."""
    q = (
        select(PredictionRecord.prediction_id, PredictionRecord.appeal)
        .where(
            PredictionRecord.needs_review.is_(True),
            ~reviewed(),
            region_in(PredictionRecord.region, regions, default_region),
        )
        .order_by(PredictionRecord.created_at.desc())
        .limit(limit)
    )
    with Session(engine) as session:
        return {pid: str((appeal or {}).get("text") or "") for pid, appeal in session.execute(q)}


def refresh(
    session: Session, ids: Sequence[str], follow: _Follow | None, now: datetime | None = None
) -> dict[str, Verdict]:
    """Recompute the progress of the stored predictions among `ids` from their histories, in
    the caller's transaction (ids of predictions that are not stored are left out)."""
    wanted = sorted(set(ids))
    verdicts: dict[str, Verdict] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        records = session.scalars(
            select(PredictionRecord).where(PredictionRecord.prediction_id.in_(chunk))
        ).all()
        histories = _histories(session, chunk)
        for record in records:
            verdicts[record.prediction_id] = progress_of(
                record, histories.get(record.prediction_id, []), follow
            )
    if verdicts:
        when = now or datetime.now(UTC)
        rows = [
            {
                "prediction_id": pid,
                "needed": ",".join(v.needed),
                "settled": ",".join(f for f in HEAD_FIELDS if f in v.settled),
                "done": v.done,
                "updated_at": when,
            }
            for pid, v in verdicts.items()
        ]
        session.execute(_upsert(session.get_bind().dialect.name), rows)
    return verdicts


def reviewed() -> Any:
    """SQL: the prediction of the outer query is done (every needed field settled)."""
    return exists().where(
        ReviewProgress.prediction_id == PredictionRecord.prediction_id,
        ReviewProgress.done.is_(True),
    )


def done_ids(engine: Engine, ids: Sequence[str]) -> set[str]:
    """Which of `ids` are done."""
    with Session(engine) as session:
        return set(
            session.scalars(
                select(ReviewProgress.prediction_id).where(
                    ReviewProgress.prediction_id.in_(sorted(set(ids))),
                    ReviewProgress.done.is_(True),
                )
            )
        )
