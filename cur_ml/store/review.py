"""The review queue: predictions that need a person, most urgent and least confident first,
without those an operator already corrected or accepted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from cur_ml.store import review_progress
from cur_ml.store.predictions import PredictionRecord

__all__ = ["ReviewFilters", "ReviewQueue"]

_URGENCY_RANK = case({"high": 0, "medium": 1, "low": 2}, value=PredictionRecord.urgency, else_=3)


@dataclass(frozen=True)
class ReviewFilters:
    """Narrow the queue: any field left None does not filter."""

    district: str | None = None
    category: str | None = None
    agency: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class ReviewQueue:
    """Queries over `predictions` × `corrections` for operators."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _where(self, query, filters: ReviewFilters, *, pending: bool):
        reviewed = review_progress.reviewed()  # every field that needed review is settled
        query = query.where(PredictionRecord.needs_review.is_(True))
        query = query.where(~reviewed if pending else reviewed)
        for column, value in (
            (PredictionRecord.district, filters.district),
            (PredictionRecord.category, filters.category),
            (PredictionRecord.agency, filters.agency),
            (PredictionRecord.source, filters.source),
        ):
            if value:
                query = query.where(column == value)
        if filters.since is not None:
            query = query.where(PredictionRecord.created_at >= filters.since)
        if filters.until is not None:
            query = query.where(PredictionRecord.created_at < filters.until)
        return query

    def page(
        self, filters: ReviewFilters = ReviewFilters(), *, offset: int = 0, limit: int = 50
    ) -> list[PredictionRecord]:
        """Pending predictions: high urgency first, then the least confident, then the oldest."""
        query = self._where(select(PredictionRecord), filters, pending=True).order_by(
            _URGENCY_RANK,
            PredictionRecord.min_confidence.asc().nulls_last(),
            PredictionRecord.created_at,
            PredictionRecord.prediction_id,
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query.offset(offset).limit(limit)))

    def counts(self, filters: ReviewFilters = ReviewFilters()) -> dict[str, int]:
        """How many appeals wait for review and how many were reviewed, under the filters."""
        with Session(self.engine) as session:
            pending = (
                session.scalar(
                    self._where(
                        select(func.count()).select_from(PredictionRecord), filters, pending=True
                    )
                )
                or 0
            )
            reviewed = (
                session.scalar(
                    self._where(
                        select(func.count()).select_from(PredictionRecord), filters, pending=False
                    )
                )
                or 0
            )
        return {"pending": pending, "reviewed": reviewed}

    def facets(self) -> dict[str, list[str]]:
        """Distinct values of the filterable columns among pending predictions (for pickers)."""
        out: dict[str, list[str]] = {}
        with Session(self.engine) as session:
            for name in ("district", "category", "agency", "source"):
                column = getattr(PredictionRecord, name)
                rows = session.scalars(
                    select(column)
                    .where(PredictionRecord.needs_review.is_(True), column.is_not(None))
                    .distinct()
                    .order_by(column)
                )
                out[name] = [r for r in rows if r]
        return out
