"""`GET /v1/review-queue`: predictions waiting for an operator, most urgent and least sure first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from cur_ml.api.access import OperatorRegions, RegionFilter, region_scope
from cur_ml.api.deps import OperatorAuth, ReviewQueueDep, store_errors
from cur_ml.api.fields import QueryTime, Text
from cur_ml.api.routers.corrections import AUTH_ERRORS
from cur_ml.api.schemas import ErrorBody, ReviewPage
from cur_ml.store.db import aware
from cur_ml.store.predictions import PredictionRecord
from cur_ml.store.review import ReviewFilters

__all__ = ["review_item", "router"]

router = APIRouter(prefix="/v1", tags=["review"])

_Text = Annotated[Text | None, Query(max_length=512)]


def review_item(
    record: PredictionRecord, now: datetime | None = None, default_region: str | None = None
) -> dict[str, Any]:
    """A prediction summary for the operator: the appeal's text and place, the four labels,
    how sure the model was and why it asks for review, its region (`default_region` for
    predictions made before regions)."""
    pred, appeal = record.prediction or {}, record.appeal or {}
    return {
        "prediction_id": record.prediction_id,
        "created_at": aware(record.created_at).isoformat(),
        "id": pred.get("id"),
        "text": appeal.get("text", ""),
        "district": record.district,
        "source": record.source,
        "category": record.category,
        "reason": record.reason,
        "urgency": record.urgency,
        "agency": record.agency,
        "confidence": pred.get("confidence"),
        "min_confidence": record.min_confidence,
        "alternatives": pred.get("alternatives"),
        "review_reasons": pred.get("review_reasons") or [],
        "deadline_days": pred.get("deadline_days"),
        "due_at": pred.get("due_at"),
        "overdue": overdue(record, now),
        "model_version": record.model_version,
        "region": record.region or default_region,
    }


def overdue(record: PredictionRecord, now: datetime | None = None) -> bool | None:
    """Past its `due_at` (None: the prediction has no deadline)."""
    due = getattr(record, "due_at", None)
    return None if due is None else aware(due) < (now or datetime.now(UTC))


@router.get(
    "/review-queue",
    response_model=ReviewPage,
    summary="Очередь проверки: просроченные первыми, затем самые срочные и наименее уверенные",
    responses={**AUTH_ERRORS, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
def review_queue(
    _auth: OperatorAuth,
    access: OperatorRegions,
    queue: ReviewQueueDep,
    region: RegionFilter = None,
    district: Annotated[Text | None, Query(max_length=256, description="Район.")] = None,
    category: _Text = None,
    agency: _Text = None,
    source: Annotated[Text | None, Query(max_length=64, description="`portal`, `vk`, ...")] = None,
    since: Annotated[
        QueryTime | None,
        Query(description="Предсказанные не раньше, ISO 8601 (без зоны — UTC)."),
    ] = None,
    until: Annotated[QueryTime | None, Query(description="Предсказанные раньше этого.")] = None,
    urgency: Annotated[
        Literal["high", "medium", "low"] | None, Query(description="Срочность.")
    ] = None,
    reason: _Text = None,
    review_reason: Annotated[
        Text | None,
        Query(
            max_length=64,
            description="Почему на проверке: вид (`low_confidence` — по любому полю) "
            "или код целиком (`low_confidence:reason`), как в `review_reasons`.",
        ),
    ] = None,
    q: Annotated[
        Text | None,
        Query(
            max_length=200,
            description="Слова текста обращения. PostgreSQL: полнотекстовый поиск "
            '(конфигурация `russian`: «лифты» находит «лифт»; "фраза", -слово, or); '
            "SQLite: каждое слово как подстрока без учёта регистра.",
        ),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Predictions flagged `needs_review` whose review is not done: those past their `due_at`
    first, then high urgency, the least confident, the nearest deadline, the oldest. One
    leaves the queue when every field its `review_reasons` name is corrected or confirmed (a
    confirmation is a correction with the value in force; a corrected reason also settles the
    category and urgency it brings); `GET /v1/predictions/{id}` says which are still open.

    A personal account sees the appeals of its regions only (`region`: one of them); the
    environment operator and admin tokens see every region's."""
    filters = ReviewFilters(
        district=district,
        category=category,
        agency=agency,
        source=source,
        since=since,
        until=until,
        urgency=urgency,
        reason=reason,
        review_reason=review_reason,
        search=q,
        regions=region_scope(access, region),
        default_region=access.default,
    )
    now = datetime.now(UTC)
    with store_errors():
        records = queue.page(filters, offset=offset, limit=limit, now=now)
        counts = queue.counts(filters, now=now)
    return {
        "items": [review_item(r, now, access.default) for r in records],
        "counts": counts,
        "offset": offset,
        "limit": limit,
    }
