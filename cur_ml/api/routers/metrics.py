"""`GET /metrics`: Prometheus text format; behind a bearer token off loopback."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from cur_ml.api.deps import MetricsDep, SettingsDep
from cur_ml.api.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["health"])
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer TOKEN`")


async def _scraper(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let the scraper through: anyone while `/metrics` is open (loopback by default), else the
    metrics token or the admin token (a Prometheus `authorization` block sends it)."""
    if not settings.metrics_locked():
        return
    tokens = [t.get_secret_value() for t in (settings.metrics_token, settings.admin_token) if t]
    if not tokens:
        raise ApiError(
            403,
            "route_disabled",
            "/metrics needs a token here: CUR_ML_METRICS_TOKEN is not set",
        )
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "/metrics needs 'Authorization: Bearer TOKEN' (the metrics or admin token)",
            {"WWW-Authenticate": "Bearer"},
        )
    given = credentials.credentials.encode("utf-8", "surrogateescape")
    # Every token compared (no early exit): timing tells nothing about which one matched.
    hits = [secrets.compare_digest(given, token.encode("utf-8")) for token in tokens]
    if not any(hits):
        raise ApiError(403, "forbidden", "the token does not grant /metrics")


_scraper.role = "metrics"  # type: ignore[attr-defined]  # read by cur_ml.api.openapi


_scraper.role = "metrics"  # type: ignore[attr-defined]  # read by cur_ml.api.openapi


@router.get(
    "/metrics",
    summary="Метрики Prometheus",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    dependencies=[Depends(_scraper)],
)
def metrics(registry: MetricsDep) -> Response:
    """Every worker's metrics, whichever answers (`cur-ml serve --workers N`)."""
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
