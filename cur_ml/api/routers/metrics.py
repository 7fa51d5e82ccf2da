"""`GET /metrics`: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from cur_ml.api.deps import MetricsDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Метрики Prometheus",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(registry: MetricsDep) -> Response:
    """Every worker's metrics, whichever answers (`cur-ml serve --workers N`)."""
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
