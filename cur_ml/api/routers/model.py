"""`GET /v1/model` (what is served) and `POST /v1/admin/reload` (swap in the model on disk)."""

from __future__ import annotations

from fastapi import APIRouter

from cur_ml.api.deps import AdminAuth, PredictAuth, SlotDep
from cur_ml.api.errors import ApiError
from cur_ml.api.schemas import ErrorBody, ModelInfo, ReloadResult
from cur_ml.errors import CurMlError

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["model"])

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
def model_info(_auth: PredictAuth, slot: SlotDep) -> dict:
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
def reload_model(_auth: AdminAuth, slot: SlotDep) -> dict:
    """Load the model directory again and switch to it; requests keep being answered
    by the old model meanwhile and finish on it. With several workers, this one
    switches now and the others within CUR_ML_MODEL_POLL_SECONDS."""
    try:
        previous, current = slot.load()
    except Exception as exc:
        why = exc.message if isinstance(exc, CurMlError) else repr(exc)
        raise ApiError(409, "model_load_failed", f"still serving the old model: {why}") from None
    return {"previous_version": previous, "model_version": current, "changed": previous != current}
