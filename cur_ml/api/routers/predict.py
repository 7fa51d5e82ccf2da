"""`POST /v1/predict`: one or many appeals in, predictions in the same order out."""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from cur_ml.api.deps import (
    MetricsDep,
    PredictAuth,
    RegionsDep,
    SettingsDep,
    StoreWritable,
    WriterDep,
)
from cur_ml.api.errors import ApiError
from cur_ml.api.logs import request_id_var, request_started_var
from cur_ml.api.schemas import ErrorBody, PredictRequest, PredictResponse
from cur_ml.api.service import predict_appeals
from cur_ml.errors import PredictorBusyError

__all__ = ["router"]

# Any Content-Type is read as JSON: `curl -d` and hurried clients get an answer, not a 422.
router = APIRouter(prefix="/v1", tags=["predict"], strict_content_type=False)


def _too_many(count: int, limit: int) -> dict[str, Any]:
    return {
        "type": "too_long",
        "loc": ("body", "appeals"),
        "msg": f"{count} appeals; the limit is {limit}",
    }


async def _batch_size_first(request: Request, settings: SettingsDep) -> None:
    """Refuse an oversized batch before its appeals are validated one by one (cheap DoS guard).

    The body is already parsed (and cached) by then; this only counts.
    """
    try:
        data = await request.json()
    except Exception:
        return  # not JSON: validation reports it
    appeals = data.get("appeals") if isinstance(data, dict) else None
    if isinstance(appeals, list) and len(appeals) > settings.max_batch:
        raise RequestValidationError([_too_many(len(appeals), settings.max_batch)])


async def _within_limits(body: PredictRequest, settings: SettingsDep) -> PredictRequest:
    """The configurable limits (batch size, text length, characters of a whole request),
    reported like schema errors."""
    errors: list[dict[str, Any]] = []
    if len(body.appeals) > settings.max_batch:
        errors.append(_too_many(len(body.appeals), settings.max_batch))
    total = sum(len(a.text) for a in body.appeals)
    if total > settings.max_request_chars:
        # One huge request must not hold every small caller up: send it in parts.
        errors.append(
            {
                "type": "too_long",
                "loc": ("body", "appeals"),
                "msg": (
                    f"{total} characters of text in one request; the limit is "
                    f"{settings.max_request_chars} (CUR_ML_MAX_REQUEST_CHARS): split the batch"
                ),
            }
        )
    limit = settings.max_text_chars
    served = settings.all_regions()
    for i, appeal in enumerate(body.appeals):
        if appeal.region is not None and appeal.region not in served:
            errors.append(
                {
                    "type": "unknown_region",
                    "loc": ("body", "appeals", i, "region"),
                    "msg": f"unknown region {appeal.region!r}; served: {', '.join(served)}",
                }
            )
        if len(appeal.text) > limit:
            errors.append(
                {
                    "type": "string_too_long",
                    "loc": ("body", "appeals", i, "text"),
                    "msg": f"{len(appeal.text)} characters; the limit is {limit}",
                }
            )
    if errors:
        raise RequestValidationError(errors)
    return body


def _shed_if_late(limit: float) -> None:
    """503 `busy` for a request that waited more than `limit` seconds before its turn."""
    arrived = request_started_var.get()
    if not limit or arrived is None:
        return
    waited = time.perf_counter() - arrived
    if waited > limit:
        raise ApiError(
            503,
            "busy",
            f"the service is overloaded: this request waited {waited:.1f} s for its turn "
            f"(the limit is {limit:g} s, CUR_ML_PREDICT_QUEUE_SECONDS); retry shortly",
            {"Retry-After": "1"},
        )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@router.post(
    "/predict",
    response_model=PredictResponse,
    summary="Маршрутизация обращений: категория, причина, срочность, ведомство",
    responses={
        401: {"model": ErrorBody, "description": "Нет токена (когда задан CUR_ML_PREDICT_TOKEN)"},
        403: {"model": ErrorBody, "description": "Токен не даёт роли predict"},
        400: {"model": ErrorBody, "description": "Тело не читается как JSON в UTF-8"},
        413: {"model": ErrorBody, "description": "Тело запроса слишком большое"},
        422: {"model": ErrorBody, "description": "Неверный ввод: поле и проблема в `detail`"},
        503: {
            "model": ErrorBody,
            "description": "Модель ещё загружается, или слишком много больших запросов ждут "
            "очереди (`busy`, повторить через Retry-After секунд), или хранилище не может "
            "записать ответы (`store_unavailable`: ни один ответ не выдан без записи; "
            "`store_busy`: очередь записи полна)",
        },
    },
)
def predict(
    _auth: PredictAuth,  # first: an unauthorised caller learns nothing about limits
    _count: Annotated[None, Depends(_batch_size_first)],
    body: Annotated[PredictRequest, Depends(_within_limits)],
    _store: StoreWritable,  # 503 store_unavailable before predicting what could not be kept
    regions: RegionsDep,
    settings: SettingsDep,
    writer: WriterDep,
    metrics: MetricsDep,
    explain: Annotated[
        bool, Query(description="Добавить слова, определившие решение (`explanation`).")
    ] = True,
) -> Response:
    """Predictions for each appeal, in input order; every one is recorded with its
    `prediction_id`, to which operator corrections refer."""
    _shed_if_late(settings.predict_queue_seconds)
    by_region: dict[str, list[int]] = {}
    for i, appeal in enumerate(body.appeals):
        by_region.setdefault(appeal.region or regions.default, []).append(i)
    # Every region's model first (loaded here on a region's first request): a region without
    # one is a 503 before anything is predicted or stored.
    servings = {region: regions.get(region) for region in by_region}
    predictions: list[dict[str, Any]] = [{}] * len(body.appeals)
    versions: dict[str, str] = {}
    try:
        for region, indexes in by_region.items():
            answers, versions[region] = predict_appeals(
                [body.appeals[i] for i in indexes],
                servings[region].predictor,
                writer,
                metrics,
                explain=explain,
                request_id=request_id_var.get(),
                region=region,
            )
            for i, answer in zip(indexes, answers, strict=True):
                predictions[i] = answer
    except PredictorBusyError as exc:
        headers = {"Retry-After": str(exc.retry_after)}
        raise ApiError(503, "busy", exc.message, headers) from exc
    first = body.appeals[0].region or regions.default
    payload = {"predictions": predictions, "model_version": versions[first]}
    # orjson: a 500-appeal answer in 2 ms instead of 18 ms with json; the documented schema
    # (PredictResponse) is checked by the tests, not re-validated on every answer.
    content = orjson.dumps(payload, option=_JSON_OPTIONS, default=_plain)
    return Response(content, media_type="application/json")
