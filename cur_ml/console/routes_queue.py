"""The review queue: pending appeals, overdue first, then the most urgent and least
confident, with filters and a text search."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cur_ml.console.context import QueueContext
from cur_ml.console.deadlines import deadline
from cur_ml.console.team import acting, claims, mark_holders
from cur_ml.console.web import access_of, gate, not_ready, redirect, render, stores

__all__ = ["PAGE_SIZE", "router"]

router = APIRouter()
PAGE_SIZE = 25
#: Appeals «Следующее» looks through for one nobody else holds (then it starts from the top).
_LOOK_AHEAD = 50
_NOTICES = {
    "empty": "Других обращений в очереди нет (с этими фильтрами).",
    "saved": "Исправление сохранено.",
}


def _row(record, ctx: QueueContext, pos: int, now: datetime, default_region: str) -> dict:
    """One line of the queue table (everything the template shows of an appeal)."""
    text = str((record.appeal or {}).get("text") or "")
    prediction = record.prediction or {}
    card = ctx.with_(pos=pos).query(page=False)
    return {
        "id": record.prediction_id,
        "href": f"/console/appeals/{quote(record.prediction_id)}" + (f"?{card}" if card else ""),
        "created_at": record.created_at,
        "urgency": record.urgency,
        "category": record.category,
        "reason": record.reason,
        "agency": record.agency,
        "district": getattr(record, "district", None) or "",
        "source": getattr(record, "source", None) or "",
        "min_confidence": getattr(record, "min_confidence", None),
        "snippet": text if len(text) <= 160 else text[:157].rstrip() + "…",
        "issues": prediction.get("review_reasons") or [],
        "due": deadline(getattr(record, "due_at", None), now),
        "region": getattr(record, "region", None) or default_region,
    }


@router.get("/", response_class=HTMLResponse, summary="Очередь на проверку")
def queue(request: Request, msg: str = "") -> Response:
    session = gate(request)
    if isinstance(session, Response):
        return session
    found = stores(request)
    if found is None:
        return not_ready(request, session)
    ctx = QueueContext.from_params(request.query_params)
    access = access_of(request, session)
    filters = ctx.filters(access)
    now = datetime.now(UTC)  # one "now" for the order, the counts and the countdowns
    counts = found.review_queue.counts(filters, now=now)
    pages = max(1, math.ceil(counts["pending"] / PAGE_SIZE))
    if ctx.page > pages:
        ctx = ctx.with_(page=pages)
    offset = (ctx.page - 1) * PAGE_SIZE
    records = found.review_queue.page(filters, offset=offset, limit=PAGE_SIZE, now=now)
    rows = [_row(r, ctx, offset + i, now, access.default) for i, r in enumerate(records)]
    mark_holders(rows, claims(request, found), acting(session))
    base = ctx.query(page=False, pos=False)
    sep = "&" if base else ""

    def page_url(n: int) -> str:
        return f"/console/?{base}{sep}page={n}" if n > 1 else f"/console/?{base}".rstrip("?")

    return render(
        request,
        "queue.html",
        {
            "ctx": ctx,
            "rows": rows,
            "counts": counts,
            "facets": found.review_queue.facets(filters),
            # A region badge where the deployment serves several; a filter for people who
            # work in more than one.
            "show_regions": len(access.served) > 1,
            "regions": access.regions if access.several else (),
            "page": ctx.page,
            "pages": pages,
            "prev_url": page_url(ctx.page - 1) if ctx.page > 1 else "",
            "next_url": page_url(ctx.page + 1) if ctx.page < pages else "",
            "first_url": rows[0]["href"] if rows else "",
            "take_url": "/console/next" + (f"?{base}" if base else ""),
            "notice": _NOTICES.get(msg, ""),
        },
        session=session,
    )


@router.get("/next", summary="Следующее обращение очереди")
def next_appeal(request: Request, current: str = "") -> Response:
    """The first pending appeal at or after the current one's position that is not it and
    that nobody else holds; it is claimed for the operator before they are sent to it."""
    session = gate(request)
    if isinstance(session, Response):
        return session
    found = stores(request)
    if found is None:
        return not_ready(request, session)
    ctx = QueueContext.from_params(request.query_params)
    filters = ctx.filters(access_of(request, session))
    me, taking = acting(session), claims(request, found)
    for offset in (ctx.pos, 0):  # past the end: start again from the top
        batch = found.review_queue.page(filters, offset=offset, limit=_LOOK_AHEAD)
        others = taking.held_by_others([r.prediction_id for r in batch], me.name)
        for i, record in enumerate(batch):
            if record.prediction_id == current or record.prediction_id in others:
                continue
            # Taken atomically: of two operators racing for it, the other moves on.
            if not taking.take(record.prediction_id, me.name, me.user_id).is_mine(me.name):
                continue
            # A skipped appeal is still pending and sits just before: i counts it.
            query = ctx.with_(pos=offset + i).query(page=False)
            return redirect(
                f"/console/appeals/{quote(record.prediction_id)}" + (f"?{query}" if query else "")
            )
    query = ctx.query(page=False, pos=False)
    return redirect(f"/console/?{query}{'&' if query else ''}msg=empty")
