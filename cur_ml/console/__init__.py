"""Operator console: server-rendered pages for working through the review queue.

Sign-in with the operator (or admin) token, the queue, an appeal's card with the
deciding words marked and one-key corrections, and the model page; and `/favicon.ico`.
"""

from fastapi import APIRouter

from cur_ml.console.router import router as _pages
from cur_ml.console.routes_icon import router as _icon

__all__ = ["router"]

#: The pages under /console and the icon at the root (the app includes this one router).
router = APIRouter(include_in_schema=False)
router.include_router(_pages)
router.include_router(_icon)
