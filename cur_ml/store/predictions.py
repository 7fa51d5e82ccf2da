"""The `predictions` table: what the service answered, to whom, with which model, and when.

Corrections (the next table) refer to a row here by `prediction_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    Index,
    String,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql  # noqa: F401 - types of func.to_tsvector on PostgreSQL
from sqlalchemy.orm import Mapped, Session, mapped_column

from cur_ml.store.db import Base

__all__ = [
    "HEAD_FIELDS",
    "LOCAL_ZONE",
    "PredictionRecord",
    "PredictionRepository",
    "due_time",
    "prediction_row",
    "review_codes",
    "search_document",
]

#: The four heads whose labels are stored as columns (and that operators correct).
HEAD_FIELDS = ("category", "reason", "urgency", "agency")
#: A deadline written without an offset is the citizen's local time: Moscow time (UTC+3 all
#: year since 2014), the zone of the regions served and of the console.
LOCAL_ZONE = timezone(timedelta(hours=3), "МСК")


def search_document() -> Any:
    """The appeal's text as PostgreSQL's full-text search reads it: `russian` stems, so
    «лифты» finds «лифт». Literals, not parameters, so queries match the GIN index
    `ix_predictions_text_search` (an expression index is used only for the same expression)."""
    text = PredictionRecord.__table__.c.appeal.op("->>")(_inline("text"))
    return func.to_tsvector(_inline("russian"), text)


def _inline(value: str) -> Any:
    """A constant written into the SQL itself (a parameter would not match the index)."""
    return literal(value, String, literal_execute=True)


class PredictionRecord(Base):
    """One served prediction: the appeal as received, the answer as sent."""

    __tablename__ = "predictions"

    prediction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    #: The region whose model answered (None: recorded before regions, the default region).
    region: Mapped[str | None] = mapped_column(String(16), index=True)
    request_id: Mapped[str | None] = mapped_column(String(128))
    #: The caller's `id` of the appeal, as text (it may be a string or an integer).
    appeal_id: Mapped[str | None] = mapped_column(String(256), index=True)
    category: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(512))
    urgency: Mapped[str] = mapped_column(String(16))
    agency: Mapped[str] = mapped_column(String(512))
    needs_review: Mapped[bool] = mapped_column(Boolean, index=True)
    #: Where the appeal came from and where (copied from it; filters of the review queue).
    district: Mapped[str | None] = mapped_column(String(256), index=True)
    source: Mapped[str | None] = mapped_column(String(64), index=True)
    #: The lowest of the four head confidences (the review queue's order).
    min_confidence: Mapped[float | None] = mapped_column(Float, index=True)
    #: The answer's `due_at` as a point in time (the queue puts overdue appeals first).
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    #: The answer's `review_reasons` as `|code|code|` (the queue filters by why-flagged).
    review_codes: Mapped[str | None] = mapped_column(String(1024))
    #: Input fields of the appeal (CONTRACT section 1) that were sent.
    appeal: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The prediction as answered (confidence, alternatives, review reasons, explanation...).
    prediction: Mapped[dict[str, Any]] = mapped_column(JSON)

    def __repr__(self) -> str:
        return f"PredictionRecord({self.prediction_id!r}, {self.model_version!r})"


# PostgreSQL only: SQLite searches with LIKE (`ReviewQueue`), it has no text search.
Index("ix_predictions_text_search", search_document(), postgresql_using="gin").ddl_if(
    dialect="postgresql"
)


def due_time(value: Any) -> datetime | None:
    """A prediction's `due_at` (ISO 8601) in UTC, as the store keeps times (SQLite drops the
    offset); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo is not None else when.replace(tzinfo=LOCAL_ZONE)).astimezone(UTC)


def review_codes(reasons: Any) -> str | None:
    """`review_reasons` as one column: `|low_confidence:reason|place_unknown|` (None: none);
    delimited on both sides, so a filter matches whole codes with LIKE."""
    codes = [str(c).replace("|", "") for c in reasons or () if c]
    text = "|" + "|".join(codes) + "|" if codes else ""
    return text[:1024] or None


def prediction_row(
    appeal: dict[str, Any],
    prediction: dict[str, Any],
    *,
    request_id: str | None = None,
    at: datetime | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """A row of `predictions` (plain dict, ready for an executemany insert)."""
    appeal_id = prediction.get("id")
    confidence = prediction.get("confidence") or {}
    scores = [float(confidence[h]) for h in HEAD_FIELDS if confidence.get(h) is not None]
    return {
        "prediction_id": prediction["prediction_id"],
        "created_at": at or datetime.now(UTC),
        "model_version": prediction["model_version"],
        "region": region,
        "request_id": request_id,
        "appeal_id": None if appeal_id is None else str(appeal_id),
        "category": prediction["category"],
        "reason": prediction["reason"],
        "urgency": prediction["urgency"],
        "agency": prediction["agency"],
        "needs_review": bool(prediction["needs_review"]),
        "district": _clip(appeal.get("district"), 256),
        "source": _clip(appeal.get("source"), 64),
        "min_confidence": min(scores) if scores else None,
        "due_at": due_time(prediction.get("due_at")),
        "review_codes": review_codes(prediction.get("review_reasons")),
        "appeal": appeal,
        "prediction": prediction,
    }


def _clip(value: Any, length: int) -> str | None:
    """The column copy of a free-text field: the full text stays in `appeal`."""
    if value is None:
        return None
    text = str(value).replace("\x00", "").strip()
    return text[:length] or None


class PredictionRepository:
    """Reads and writes of `predictions`; one short transaction per call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows built by `prediction_row` in one executemany."""
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(PredictionRecord), list(rows))

    def get(self, prediction_id: str) -> PredictionRecord | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(PredictionRecord, prediction_id)

    def existing(self, prediction_ids: Sequence[str]) -> set[str]:
        """Which of `prediction_ids` are stored."""
        ids = sorted(set(prediction_ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found.update(
                    conn.scalars(
                        select(PredictionRecord.prediction_id).where(
                            PredictionRecord.prediction_id.in_(chunk)
                        )
                    )
                )
        return found

    def count(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(PredictionRecord)) or 0

    def recent(
        self, limit: int = 100, *, needs_review: bool | None = None
    ) -> list[PredictionRecord]:
        """Newest first; `needs_review` filters the review queue."""
        query = select(PredictionRecord).order_by(PredictionRecord.created_at.desc()).limit(limit)
        if needs_review is not None:
            query = query.where(PredictionRecord.needs_review == needs_review)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))
