"""HTTP service: `create_app(settings)` builds the FastAPI app, `serve(...)` runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cur_ml.api.main import create_app
    from cur_ml.api.server import serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:  # FastAPI and uvicorn are imported when first needed
    if name == "create_app":
        from cur_ml.api.main import create_app

        return create_app
    if name == "serve":
        from cur_ml.api.server import serve

        return serve
    raise AttributeError(name)
