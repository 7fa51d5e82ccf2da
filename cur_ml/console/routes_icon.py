"""`/favicon.ico` at the site's root, where browsers ask for it on every console page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from cur_ml.console.web import STATIC_DIR

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """The console's icon (a day of caching: it never changes within a release)."""
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )
