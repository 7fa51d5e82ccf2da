"""The operator console under /console: one router made of the page modules."""

from __future__ import annotations

from fastapi import APIRouter

from cur_ml.console import (
    routes_appeal,
    routes_auth,
    routes_mine,
    routes_model,
    routes_queue,
    routes_similar,
)

__all__ = ["router"]

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)
for _module in (
    routes_auth,
    routes_queue,
    routes_appeal,
    routes_model,
    routes_mine,
    routes_similar,
):
    router.include_router(_module.router)
