"""The `predictions` table: what the service answered, to whom, with which model, and when.

Corrections (the next table) refer to a row here by `prediction_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Engine, Float, String, func, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cur_ml.store.db import Base

__all__ = ["HEAD_FIELDS", "PredictionRecord", "PredictionRepository", "prediction_row"]

#: The four heads whose labels are stored as columns (and that operators correct).
HEAD_FIELDS = ("category", "reason", "urgency", "agency")


class PredictionRecord(Base):
    """One served prediction: the appeal as received, the answer as sent."""

    __tablename__ = "predictions"

    prediction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
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
    #: Input fields of the appeal (CONTRACT section 1) that were sent.
    appeal: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The prediction as answered (confidence, alternatives, review reasons, explanation...).
    prediction: Mapped[dict[str, Any]] = mapped_column(JSON)

    def __repr__(self) -> str:
        return f"PredictionRecord({self.prediction_id!r}, {self.model_version!r})"


def prediction_row(
    appeal: dict[str, Any],
    prediction: dict[str, Any],
    *,
    request_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """A row of `predictions` (plain dict, ready for an executemany insert)."""
    appeal_id = prediction.get("id")
    confidence = prediction.get("confidence") or {}
    scores = [float(confidence[h]) for h in HEAD_FIELDS if confidence.get(h) is not None]
    return {
        "prediction_id": prediction["prediction_id"],
        "created_at": at or datetime.now(UTC),
        "model_version": prediction["model_version"],
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
