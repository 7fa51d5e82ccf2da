"""`POST /v1/admin/retrain` (queue a retraining for `cur-ml worker`) and `GET` its runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from cur_ml.api.deps import AdminAuth, RetrainJobsDep, store_errors
from cur_ml.api.errors import ApiError
from cur_ml.api.fields import Text
from cur_ml.api.routers.corrections import AUTH_ERRORS
from cur_ml.api.schemas import ErrorBody, RetrainRunInfo, RetrainRuns

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["retrain"])


@router.post(
    "/retrain",
    status_code=202,
    response_model=RetrainRunInfo,
    summary="Поставить переобучение в очередь (его выполнит `cur-ml worker`)",
    responses={
        **AUTH_ERRORS,
        409: {"model": ErrorBody, "description": "Переобучение уже в очереди или идёт"},
        503: {"model": ErrorBody},
    },
)
def start_retrain(
    _auth: AdminAuth,
    jobs: RetrainJobsDep,
    allow_no_match: Annotated[
        bool,
        Query(description="Переобучить, даже если ни одно исправление не относится к базе."),
    ] = False,
) -> JSONResponse:
    """Queue a job: a worker process (`cur-ml worker`) trains a challenger on the base data
    (CUR_ML_BASE_DATA) plus every approved correction, judges it against the registry's
    champion on the newest weeks of the base data with paired tests, and promotes it only if
    no head is significantly worse and recall of `high` is not lower. This process never
    trains: it serves the promoted model once the worker has refreshed the model directory
    (within CUR_ML_MODEL_POLL_SECONDS). Follow the job at `GET /v1/admin/retrain/{id}`: a
    refused, failed or rejected job leaves the champion serving."""
    with store_errors():
        run = jobs.start("api", {"allow_no_match": allow_no_match})
        if run is None:
            current = jobs.current()
            which = f" (run {current.id})" if current is not None else ""
            raise ApiError(409, "retrain_running", f"a retrain is already queued or running{which}")
    return JSONResponse(run.to_dict(), status_code=202)


@router.get(
    "/retrain",
    response_model=RetrainRuns,
    summary="Последние запуски переобучения",
    responses={**AUTH_ERRORS, 503: {"model": ErrorBody}},
)
def list_retrains(
    _auth: AdminAuth,
    jobs: RetrainJobsDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Сколько запусков.")] = 20,
) -> dict[str, Any]:
    with store_errors():
        return {"runs": [r.to_dict() for r in jobs.runs.recent(limit)]}


@router.get(
    "/retrain/{run_id}",
    response_model=RetrainRunInfo,
    summary="Один запуск переобучения: статус, решение, причины",
    responses={**AUTH_ERRORS, 404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
def get_retrain(
    _auth: AdminAuth,
    jobs: RetrainJobsDep,
    run_id: Annotated[Text, Path(max_length=64, description="`id` запуска.")],
) -> dict[str, Any]:
    with store_errors():
        run = jobs.runs.get(run_id)
    if run is None:
        raise ApiError(404, "not_found", f"no retrain run {run_id!r}")
    return run.to_dict()
