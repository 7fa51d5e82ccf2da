"""`POST /v1/admin/retrain` (queue a retraining of a region's model for `cur-ml worker`) and
`GET` its runs; an admin sees and starts only the jobs of their regions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from cur_ml.api.access import AdminRegions, RegionFilter, chosen_region, region_scope
from cur_ml.api.deps import AdminAuth, RetrainJobsDep, store_errors
from cur_ml.api.errors import ApiError
from cur_ml.api.fields import Text
from cur_ml.api.routers.corrections import AUTH_ERRORS
from cur_ml.api.schemas import ErrorBody, RetrainRequest, RetrainRunInfo, RetrainRuns
from cur_ml.auth import RegionAccess
from cur_ml.store.retrain_runs import RetrainRun

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["retrain"])


def _run(run: RetrainRun, access: RegionAccess) -> dict[str, Any]:
    """A job as the API shows it: a job queued before regions is the default region's."""
    return {**run.to_dict(), "region": access.region_of(run.region)}


@router.post(
    "/retrain",
    status_code=202,
    response_model=RetrainRunInfo,
    summary="Поставить переобучение модели региона в очередь (его выполнит `cur-ml worker`)",
    responses={
        **AUTH_ERRORS,
        403: {
            "model": ErrorBody,
            "description": "Токен не даёт роли admin, маршрут выключен, или администратор не "
            "работает в этом регионе",
        },
        409: {"model": ErrorBody, "description": "Переобучение региона уже в очереди или идёт"},
        422: {"model": ErrorBody, "description": "Неизвестный регион"},
        503: {"model": ErrorBody},
    },
)
def start_retrain(
    _auth: AdminAuth,
    access: AdminRegions,
    jobs: RetrainJobsDep,
    body: RetrainRequest | None = None,
    allow_no_match: Annotated[
        bool,
        Query(description="Переобучить, даже если ни одно исправление не относится к базе."),
    ] = False,
) -> JSONResponse:
    """Queue a job for a region's model (`region`; none: the deployment's default region): a
    worker process (`cur-ml worker`) trains a challenger on the base data (CUR_ML_BASE_DATA)
    plus every approved correction, judges it against the registry's champion on the newest
    weeks of the base data with paired tests, and promotes it only if no head is
    significantly worse and recall of `high` is not lower. This process never trains: it
    serves the promoted model once the worker has refreshed the model directory (within
    CUR_ML_MODEL_POLL_SECONDS). Follow the job at `GET /v1/admin/retrain/{id}`: a refused,
    failed or rejected job leaves the champion serving. One job per region is queued or
    running at a time; a personal admin starts jobs of their own regions only (403)."""
    wanted = body.region if body is not None and body.region is not None else access.default
    region = chosen_region(access, wanted, ("body", "region"))
    with store_errors():
        run = jobs.start("api", {"allow_no_match": allow_no_match}, region=region)
        if run is None:
            current = jobs.current(region)
            which = f" (run {current.id})" if current is not None else ""
            raise ApiError(
                409,
                "retrain_running",
                f"a retrain of region {region} is already queued or running{which}",
            )
    return JSONResponse(_run(run, access), status_code=202)


@router.get(
    "/retrain",
    response_model=RetrainRuns,
    summary="Последние запуски переобучения (регионов администратора)",
    responses={**AUTH_ERRORS, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
def list_retrains(
    _auth: AdminAuth,
    access: AdminRegions,
    jobs: RetrainJobsDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Сколько запусков.")] = 20,
    region: RegionFilter = None,
) -> dict[str, Any]:
    """The newest jobs first, of the caller's regions (`region`: one of them)."""
    scope = region_scope(access, region)
    with store_errors():
        return {"runs": [_run(r, access) for r in jobs.runs.recent(limit, regions=scope)]}


@router.get(
    "/retrain/{run_id}",
    response_model=RetrainRunInfo,
    summary="Один запуск переобучения: статус, решение, причины",
    responses={**AUTH_ERRORS, 404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
def get_retrain(
    _auth: AdminAuth,
    access: AdminRegions,
    jobs: RetrainJobsDep,
    run_id: Annotated[Text, Path(max_length=64, description="`id` запуска.")],
) -> dict[str, Any]:
    """A job of another region than the caller's is a 404, as one that does not exist."""
    with store_errors():
        run = jobs.runs.get(run_id)
    if run is None or not access.sees(run.region):
        raise ApiError(404, "not_found", f"no retrain run {run_id!r}")
    return _run(run, access)
