"""The review queue: predictions that need a person, overdue first, then the most urgent and
least confident, without those an operator already corrected or accepted."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    ColumnElement,
    Engine,
    String,
    and_,
    case,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from cur_ml.store import review_progress
from cur_ml.store.db import fold
from cur_ml.store.predictions import PredictionRecord, search_document
from cur_ml.store.regions import region_in

__all__ = ["ReviewFilters", "ReviewQueue"]

_URGENCY_RANK = case({"high": 0, "medium": 1, "low": 2}, value=PredictionRecord.urgency, else_=3)
_WORD = re.compile(r"\w+")
#: Words of a search that SQLite's LIKE fallback looks for (each one a substring, all of them).
_MAX_WORDS = 8


@dataclass(frozen=True)
class ReviewFilters:
    """Narrow the queue: any field left None does not filter."""

    district: str | None = None
    category: str | None = None
    agency: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    urgency: str | None = None
    reason: str | None = None
    #: Why the model asked for review: a kind (`low_confidence`, any field) or a whole code
    #: (`low_confidence:reason`).
    review_reason: str | None = None
    #: Words of the appeal's text (PostgreSQL: full-text, `russian`; SQLite: substrings).
    search: str | None = None
    #: Only appeals of these regions (None: of every region); rows without a region are
    #: `default_region`'s (written before regions).
    regions: tuple[str, ...] | None = None
    default_region: str | None = None

    def region_filter(self) -> ColumnElement[bool]:
        """SQL: the prediction is of one of `regions` (true when they are None)."""
        return region_in(PredictionRecord.region, self.regions, self.default_region)


def _like(text: str) -> str:
    """`text` for LIKE ... ESCAPE '\\': its own %, _ and \\ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _review_code(value: str) -> ColumnElement[bool]:
    codes = PredictionRecord.review_codes
    exact = codes.like(f"%|{_like(value)}|%", escape="\\")
    if ":" in value:
        return exact
    return or_(exact, codes.like(f"%|{_like(value)}:%", escape="\\"))


class ReviewQueue:
    """Queries over `predictions` × `corrections` for operators."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _search(self, text: str) -> ColumnElement[bool]:
        """Appeals whose text matches `text`: PostgreSQL full-text search with the `russian`
        configuration (stems, stop-words, web-search syntax: "фраза", -слово, or); elsewhere
        every word as a case-folded substring (`cur_ml_fold`, see `store.db.fold`)."""
        if self.engine.dialect.name == "postgresql":
            russian = literal("russian", String, literal_execute=True)
            query = func.websearch_to_tsquery(russian, text)
            return search_document().op("@@")(query)
        words = [fold(w) or "" for w in _WORD.findall(text)][:_MAX_WORDS]
        body = PredictionRecord.appeal["text"].as_string()
        sqlite = self.engine.dialect.name == "sqlite"
        folded = func.cur_ml_fold(body) if sqlite else func.lower(body)
        return and_(*(folded.like(f"%{_like(w)}%", escape="\\") for w in words))

    def _where(self, query, filters: ReviewFilters, *, pending: bool):
        reviewed = review_progress.reviewed()  # every field that needed review is settled
        query = query.where(PredictionRecord.needs_review.is_(True))
        query = query.where(~reviewed if pending else reviewed)
        if filters.regions is not None:
            query = query.where(filters.region_filter())
        for column, value in (
            (PredictionRecord.district, filters.district),
            (PredictionRecord.category, filters.category),
            (PredictionRecord.agency, filters.agency),
            (PredictionRecord.source, filters.source),
            (PredictionRecord.urgency, filters.urgency),
            (PredictionRecord.reason, filters.reason),
        ):
            if value:
                query = query.where(column == value)
        if filters.since is not None:
            query = query.where(PredictionRecord.created_at >= filters.since)
        if filters.until is not None:
            query = query.where(PredictionRecord.created_at < filters.until)
        if filters.review_reason:
            query = query.where(_review_code(filters.review_reason))
        if filters.search and _WORD.search(filters.search):
            query = query.where(self._search(filters.search))
        return query

    def page(
        self,
        filters: ReviewFilters = ReviewFilters(),
        *,
        offset: int = 0,
        limit: int = 50,
        now: datetime | None = None,
    ) -> list[PredictionRecord]:
        """Pending predictions: past their `due_at` first; then high urgency, the least
        confident, the nearest deadline, the oldest."""
        overdue = case((PredictionRecord.due_at < _utc(now), 0), else_=1)
        query = self._where(select(PredictionRecord), filters, pending=True).order_by(
            overdue,
            _URGENCY_RANK,
            PredictionRecord.min_confidence.asc().nulls_last(),
            PredictionRecord.due_at.asc().nulls_last(),
            PredictionRecord.created_at,
            PredictionRecord.prediction_id,
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query.offset(offset).limit(limit)))

    def counts(
        self, filters: ReviewFilters = ReviewFilters(), *, now: datetime | None = None
    ) -> dict[str, int]:
        """How many appeals wait for review (and how many of them are past their deadline)
        and how many were reviewed, under the filters."""
        late = func.coalesce(func.sum(case((PredictionRecord.due_at < _utc(now), 1), else_=0)), 0)
        with Session(self.engine) as session:
            pending, overdue = session.execute(
                self._where(
                    select(func.count(), late).select_from(PredictionRecord), filters, pending=True
                )
            ).one()
            reviewed = (
                session.scalar(
                    self._where(
                        select(func.count()).select_from(PredictionRecord), filters, pending=False
                    )
                )
                or 0
            )
        return {"pending": pending or 0, "reviewed": reviewed, "overdue": int(overdue or 0)}

    def facets(self, filters: ReviewFilters = ReviewFilters()) -> dict[str, list[str]]:
        """Distinct values of the filterable columns among flagged predictions (for pickers)
        of the regions `filters` keep to; `review_reason`: the kinds of review reasons
        (`low_confidence`, `place_unknown`...)."""
        out: dict[str, list[str]] = {}
        flagged = and_(PredictionRecord.needs_review.is_(True), filters.region_filter())
        with Session(self.engine) as session:
            for name in ("district", "category", "reason", "agency", "source"):
                column = getattr(PredictionRecord, name)
                rows = session.scalars(
                    select(column).where(flagged, column.is_not(None)).distinct().order_by(column)
                )
                out[name] = [r for r in rows if r]
            combos = session.scalars(
                select(PredictionRecord.review_codes)
                .where(flagged, PredictionRecord.review_codes.is_not(None))
                .distinct()
            )
            kinds = {c.partition(":")[0] for combo in combos for c in combo.split("|") if c}
        out["review_reason"] = sorted(kinds)
        return out

    def regions_of(self, ids: Sequence[str]) -> dict[str, str | None]:
        """prediction_id → region (None: written before regions) of the stored ones among
        `ids`."""
        wanted = sorted(set(ids))
        out: dict[str, str | None] = {}
        with Session(self.engine) as session:
            for start in range(0, len(wanted), 500):
                q = select(PredictionRecord.prediction_id, PredictionRecord.region).where(
                    PredictionRecord.prediction_id.in_(wanted[start : start + 500])
                )
                out.update({pid: region for pid, region in session.execute(q)})
        return out


def _utc(now: datetime | None) -> datetime:
    """Now, or the given time, in UTC (SQLite compares the stored UTC text, not instants)."""
    return (now or datetime.now(UTC)).astimezone(UTC)
