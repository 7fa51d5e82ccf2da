"""`GET /v1/model` (what is served), `GET /v1/regions` (every region's model, loaded or not)
and `POST /v1/admin/reload` (swap in the model on disk)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cur_ml.api.access import AdminRegions, chosen_region
from cur_ml.api.deps import PredictAuth, RegionsDep
from cur_ml.api.errors import ApiError
from cur_ml.api.schemas import ErrorBody, ModelInfo, RegionCode, RegionStatus, ReloadResult
from cur_ml.errors import CurMlError

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["model"])

RegionQuery = Annotated[
    RegionCode | None, Query(description="Код региона; без него — регион по умолчанию.")
]


_AUTH_ERRORS = {
    401: {"model": ErrorBody, "description": "Нет токена"},
    403: {"model": ErrorBody, "description": "Токен не даёт нужной роли, или маршрут выключен"},
}


@router.get(
    "/model",
    response_model=ModelInfo,
    summary="Обслуживаемая модель: версия, данные обучения, метрики, метки",
    responses={**_AUTH_ERRORS, 503: {"model": ErrorBody}},
)
def model_info(_auth: PredictAuth, regions: RegionsDep, region: RegionQuery = None) -> dict:
    slot = regions.get(region).slot  # an unknown region: 422 naming it
    model = slot.require()
    manifest = model.manifest
    data = manifest.get("data", {})
    return {
        "model_version": model.version,
        "created_at": manifest.get("created_at"),
        "loaded_at": slot.loaded_at.isoformat(timespec="seconds") if slot.loaded_at else "",
        "training_data": {"sha256": data.get("sha256"), "rows": data.get("rows")},
        "metrics": manifest.get("metrics", {}),
        "labels": manifest.get("labels") or model.label_sets(),
        "libraries": manifest.get("libraries", {}),
    }


@router.post(
    "/admin/reload",
    response_model=ReloadResult,
    summary="Перезагрузить модель из её каталога (атомарная замена)",
    responses={**_AUTH_ERRORS, 409: {"model": ErrorBody, "description": "Модель не загрузилась"}},
)
def reload_model(access: AdminRegions, regions: RegionsDep, region: RegionQuery = None) -> dict:
    """Load the region's model directory again and switch to it; requests keep being
    answered by the old model meanwhile and finish on it. With several workers, this one
    switches now and the others within CUR_ML_MODEL_POLL_SECONDS. A personal admin reloads
    only their regions' models (403)."""
    wanted = chosen_region(
        access, access.default if region is None else region, ("query", "region")
    )
    slot = regions.get(wanted).slot
    try:
        previous, current = slot.load()
    except Exception as exc:
        why = exc.message if isinstance(exc, CurMlError) else repr(exc)
        raise ApiError(409, "model_load_failed", f"still serving the old model: {why}") from None
    return {"previous_version": previous, "model_version": current, "changed": previous != current}


@router.get(
    "/regions",
    response_model=list[RegionStatus],
    summary="Регионы развёртывания: загружена ли модель, её версия и память",
    responses=_AUTH_ERRORS,
)
def region_status(_auth: PredictAuth, regions: RegionsDep) -> list[dict]:
    """Every region served, its model loaded or not (a region's model loads on its first
    request and is unloaded above CUR_ML_MODEL_MEMORY_MB or after CUR_ML_MODEL_IDLE_MINUTES),
    and the memory the process grew by when it loaded."""
    return regions.status()
