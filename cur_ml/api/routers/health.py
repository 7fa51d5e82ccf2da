"""`GET /healthz` (the process answers) and `GET /readyz` (a model is loaded, the store is up)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cur_ml.api.deps import SlotDep, WriterDep
from cur_ml.api.schemas import Status

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/healthz", response_model=Status, response_model_exclude_none=True, summary="Процесс жив"
)
async def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Status,
    response_model_exclude_none=True,
    summary="Готов отвечать: модель загружена",
    responses={503: {"model": Status, "description": "Модель ещё не загружена"}},
)
async def readyz(slot: SlotDep, writer: WriterDep) -> JSONResponse | dict:
    model = slot.model
    if model is None:
        status = "failed" if slot.error else "loading"
        return JSONResponse({"status": status, "detail": slot.error}, status_code=503)
    if not writer.alive:
        return JSONResponse(
            {"status": "store_down", "model_version": model.version}, status_code=503
        )
    return {"status": "ready", "model_version": model.version}
