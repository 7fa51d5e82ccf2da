"""`GET /healthz` (the process answers) and `GET /readyz` (a model is loaded, the store
can take writes)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from cur_ml.api.deps import SlotDep, StoreHealthDep, WriterDep
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
    summary="Готов отвечать: модель загружена, хранилище принимает записи",
    responses={
        503: {
            "model": Status,
            "description": "Модель ещё не загружена (`loading`, `failed`) или хранилище не "
            "принимает записи (`store_unavailable`: файл SQLite пропал, сервер БД не отвечает)",
        }
    },
)
async def readyz(slot: SlotDep, writer: WriterDep, health: StoreHealthDep) -> JSONResponse | dict:
    model = slot.model
    if model is None:
        # Why a load failed names files and checksums: the log has it, not this public answer.
        if slot.error:
            body = {"status": "failed", "detail": "the model could not be loaded; see the log"}
        else:
            body = {"status": "loading"}
        return JSONResponse(body, status_code=503)
    # A cached verdict costs nothing; a stale one is re-probed (a stat, a query) off the loop.
    ok = health.check() if health.fresh else await run_in_threadpool(health.check)
    if not ok or not writer.alive:
        # Unauthenticated callers read this: why exactly (file path, server) goes to the log.
        body = {
            "status": "store_unavailable",
            "model_version": model.version,
            "detail": "the store cannot record predictions",
        }
        return JSONResponse(body, status_code=503)
    return {"status": "ready", "model_version": model.version}
