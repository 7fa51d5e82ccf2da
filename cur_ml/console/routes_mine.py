"""«Проверенные мной»: the appeals an operator corrected or accepted, with an undo for a while.

An undo stores new rows that restore the labels in force before the operator's latest run
of corrections on the appeal (history is append-only), and the appeal returns to the queue
when a field that needed review is open again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.exc import OperationalError

from cur_ml.console.team import acting, follow_of, parse_version, review_log
from cur_ml.console.web import (
    access_of,
    gate,
    message,
    not_ready,
    redirect,
    render,
    settings_of,
    stores,
)
from cur_ml.errors import StaleVersionError, StoreBusyError, UndoRefusedError
from cur_ml.store.correction_record import DERIVED

__all__ = ["router"]

router = APIRouter()

_NOTICES = {"undone": "Отменено: метки восстановлены, обращение снова ждёт проверки."}


def _item(reviewed, now: datetime) -> dict:
    record = reviewed.record
    text = str((record.appeal or {}).get("text") or "")
    return {
        "id": record.prediction_id,
        "href": f"/console/appeals/{quote(record.prediction_id)}",
        "snippet": text if len(text) <= 140 else text[:137].rstrip() + "…",
        "at": reviewed.rows[-1].created_at if reviewed.rows else None,
        "changes": [
            {
                "field": r.field,
                "old": r.old_value,
                "new": r.new_value,
                "derived": r.source == DERIVED,
                "comment": r.comment,
            }
            for r in reviewed.rows[-12:]
        ],
        "undoable": bool(reviewed.undoable) and reviewed.until is not None and reviewed.until > now,
        "until": reviewed.until,
        "undone": reviewed.undone,
        "done": reviewed.done,
        "version": reviewed.version,
    }


@router.get("/mine", response_class=HTMLResponse, summary="Проверенные мной")
def mine(request: Request, msg: str = "") -> Response:
    session = gate(request)
    if isinstance(session, Response):
        return session
    found = stores(request)
    if found is None:
        return not_ready(request, session)
    now = datetime.now(UTC)
    access = access_of(request, session)
    items = [
        r
        for r in review_log(request, found).mine(acting(session).name, limit=50, now=now)
        if access.sees(r.record.region)  # a shared name, or regions taken away since
    ]
    return render(
        request,
        "mine.html",
        {
            "items": [_item(r, now) for r in items],
            "minutes": round(settings_of(request).undo_minutes),
            "notice": _NOTICES.get(msg, ""),
        },
        session=session,
    )


@router.post("/mine/undo", response_class=HTMLResponse, summary="Отменить своё исправление")
def undo(
    request: Request,
    csrf: Annotated[str, Form()] = "",
    prediction_id: Annotated[str, Form()] = "",
    base: Annotated[str, Form()] = "",
) -> Response:
    session = gate(request)
    if isinstance(session, Response):
        return session
    if not session.csrf_ok(csrf):
        return message(
            request, session, "Форма устарела", "Форма устарела. Откройте список ещё раз.", 403
        )
    found = stores(request)
    if found is None:
        return not_ready(request, session)
    log = review_log(request, found)
    access = access_of(request, session)
    record = found.predictions.get(prediction_id[:64])
    try:
        if record is None or not access.sees(record.region):
            # Not the person's to undo: refused as an appeal they never corrected is.
            raise UndoRefusedError(f"nothing of yours to undo on {prediction_id[:64]!r}")
        log.undo(
            record.prediction_id,
            acting(session).name,
            base_version=parse_version(base),
            follow=follow_of(request, access.region_of(record.region)),
        )
    except (StaleVersionError, UndoRefusedError) as exc:
        changed = isinstance(exc, StaleVersionError) or exc.changed_after
        minutes = round(log.window.total_seconds() / 60)
        text = (
            "После вашего исправления обращение уже изменили: отменять нечего. "
            "Откройте карточку, чтобы исправить заново."
            if changed
            else f"Отменить можно только свои исправления последних {minutes} минут."
        )
        return message(request, session, "Отмена невозможна", text, 409)
    except (OperationalError, StoreBusyError):
        return message(
            request, session, "Хранилище недоступно", "Не отменено: повторите через минуту.", 503
        )
    return redirect("/console/mine?msg=undone")
