"""`POST /v1/corrections` (operators say what a field should have been) and `GET` their history."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cur_ml.api.deps import (
    CorrectionsDep,
    OperatorAuth,
    RetrainJobsDep,
    WriterDep,
    store_errors,
)
from cur_ml.api.schemas import (
    AS_UTC,
    NO_NUL,
    CorrectableField,
    CorrectionPage,
    CorrectionsRequest,
    CorrectionsResponse,
    ErrorBody,
)
from cur_ml.errors import IdempotencyKeyReusedError, UnknownPredictionError
from cur_ml.retrain.jobs import RetrainJobs
from cur_ml.store.corrections import CorrectionIn, CorrectionRecord, CorrectionRepository
from cur_ml.store.writer import PredictionWriter

__all__ = ["AUTH_ERRORS", "router"]

log = logging.getLogger(__name__)

# Any Content-Type is read as JSON, as for /v1/predict.
router = APIRouter(prefix="/v1", tags=["corrections"], strict_content_type=False)

#: Seconds to wait for the prediction writer before calling a prediction_id unknown.
FLUSH_SECONDS = 5.0

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Нет токена"},
    403: {"model": ErrorBody, "description": "Токен не даёт нужной роли, или маршрут выключен"},
}
_STORE_DOWN = {503: {"model": ErrorBody, "description": "Хранилище недоступно; повторите"}}


def _problems(positions: list[int], field: str, problem: str) -> RequestValidationError:
    return RequestValidationError(
        [
            {"type": "value_error", "loc": ("body", "corrections", i, field), "msg": problem}
            for i in positions
        ]
    )


def _store(
    repo: CorrectionRepository, writer: PredictionWriter, items: list[CorrectionIn]
) -> list[tuple[CorrectionRecord, bool]]:
    """Store in one transaction; an unknown prediction_id is retried once after the writer
    flushed (a prediction answered a moment ago may still wait in its queue)."""
    for attempt in (1, 2):
        try:
            with store_errors():
                return repo.add_many(items)
        except UnknownPredictionError as exc:
            if attempt == 1:
                writer.flush(FLUSH_SECONDS)
                continue
            raise _problems(
                exc.positions, "prediction_id", "unknown prediction_id: no such prediction served"
            ) from None
        except IdempotencyKeyReusedError as exc:
            raise _problems(
                exc.positions,
                "idempotency_key",
                "this idempotency_key already stored a different correction",
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _auto_retrain(jobs: RetrainJobs) -> None:
    """Start an automatic retrain when enough corrections arrived; never fails the request."""
    try:
        run = jobs.maybe_start_auto()
    except Exception:
        log.exception("automatic retrain could not be started")
        return
    if run is not None:
        log.info("automatic retrain started", extra={"retrain_run": run.id})


@router.post(
    "/corrections",
    status_code=201,
    response_model=CorrectionsResponse,
    summary="Исправления операторов: какое значение поля было правильным",
    responses={
        200: {"model": CorrectionsResponse, "description": "Всё уже было сохранено (повтор)"},
        **AUTH_ERRORS,
        422: {"model": ErrorBody, "description": "Неверный ввод: поле и проблема в `detail`"},
        **_STORE_DOWN,
    },
)
def post_corrections(
    _auth: OperatorAuth,
    body: CorrectionsRequest,
    corrections: CorrectionsDep,
    writer: WriterDep,
    jobs: RetrainJobsDep,
) -> JSONResponse:
    """Store the corrections of one request in one transaction; the answer comes after the
    commit, so a 2xx correction is durable. `old_value` is the field's value in force before
    (its previous correction, else the prediction). A correction with the predicted value is
    an acceptance: the prediction leaves the review queue all the same.

    201 when anything new was stored, 200 when every item was a repeat of its
    `idempotency_key` (`created: false`, the stored record returned)."""
    items = [
        CorrectionIn(
            field=c.field,
            new_value=c.value,
            operator=(c.operator or "").strip() or "operator",
            prediction_id=c.prediction_id,
            comment=c.comment,
            idempotency_key=c.idempotency_key,
        )
        for c in body.corrections
    ]
    stored = _store(corrections, writer, items)
    created = any(new for _, new in stored)
    if created:
        _auto_retrain(jobs)
    payload = {"corrections": [{**rec.to_dict(), "created": new} for rec, new in stored]}
    return JSONResponse(payload, status_code=201 if created else 200)


@router.get(
    "/corrections",
    response_model=CorrectionPage,
    summary="История исправлений (постранично, от старых к новым)",
    responses={**AUTH_ERRORS, 422: {"model": ErrorBody}, **_STORE_DOWN},
)
def list_corrections(
    _auth: OperatorAuth,
    corrections: CorrectionsDep,
    since: Annotated[
        datetime | None,
        Query(description="Сохранённые не раньше, ISO 8601 (без зоны — UTC)."),
        AS_UTC,
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Сохранённые раньше этого."), AS_UTC
    ] = None,
    field: Annotated[CorrectableField | None, Query(description="Только это поле.")] = None,
    operator: Annotated[
        str | None, Query(max_length=128, description="Только этот оператор."), NO_NUL
    ] = None,
    prediction_id: Annotated[
        str | None, Query(max_length=64, description="Только этого предсказания."), NO_NUL
    ] = None,
    cursor: Annotated[
        int,
        # Ids are 64-bit signed integers in both databases: a larger cursor names no row.
        Query(ge=0, le=2**63 - 1, description="`next_cursor` предыдущей страницы; 0 — с начала."),
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1_000, description="Размер страницы.")] = 100,
) -> dict[str, Any]:
    """Corrections in the order they were stored; follow `next_cursor` until it is null."""
    with store_errors():
        rows = corrections.query(
            since=since,
            until=until,
            field=field,
            operator=operator,
            prediction_id=prediction_id,
            after_id=cursor,
            limit=limit + 1,
        )
    page = rows[:limit]
    return {
        "corrections": [r.to_dict() for r in page],
        "next_cursor": page[-1].id if len(rows) > limit else None,
    }
