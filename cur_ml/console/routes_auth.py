"""Sign-in with an operator or admin token, sign-out, and the console's two static files."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from cur_ml.console.session import ConsoleSession, enabled, role_for
from cur_ml.console.web import (
    STATIC_DIR,
    disabled,
    redirect,
    render,
    safe_next,
    session_of,
    set_session,
    settings_of,
)

__all__ = ["router"]

router = APIRouter()

_STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
_NAME_JUNK = re.compile(r"[\x00-\x1f\x7f]+")


def _clean_name(name: str) -> str:
    """An operator's name as it goes into the corrections log: one line, at most 64 characters."""
    return " ".join(_NAME_JUNK.sub(" ", name).split())[:64]


def _login_page(
    request: Request,
    session: ConsoleSession,
    *,
    next_url: str,
    name: str = "",
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> HTMLResponse:
    response = render(
        request,
        "login.html",
        {"next_url": next_url, "name": name, "error": error, "notice": notice},
        session=session,
        status=status,
    )
    set_session(request, response, session)
    return response


@router.get("/login", response_class=HTMLResponse, summary="Вход в консоль оператора")
def login_form(request: Request, next: str = "", out: str = "") -> Response:
    if not enabled(settings_of(request)):
        return disabled(request)
    session = session_of(request)
    if session is not None and session.role is not None:
        return redirect(safe_next(next))
    # The form's CSRF token lives in an anonymous session made here.
    anonymous = session if session is not None else ConsoleSession.anonymous()
    notice = "Вы вышли из консоли." if out else ""
    return _login_page(request, anonymous, next_url=safe_next(next), notice=notice)


@router.post("/login", response_class=HTMLResponse, summary="Войти по токену")
def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    settings = settings_of(request)
    if not enabled(settings):
        return disabled(request)
    name, next_url = _clean_name(name), safe_next(next)
    session = session_of(request)
    if session is None or not session.csrf_ok(csrf):
        return _login_page(
            request,
            ConsoleSession.anonymous(),
            next_url=next_url,
            name=name,
            error="Форма устарела. Введите токен ещё раз.",
            status=400,
        )
    role = role_for(settings, token)
    if role is None:
        error = "Токен не подходит." if token.strip() else "Введите токен."
        return _login_page(request, session, next_url=next_url, name=name, error=error, status=403)
    return set_session(request, redirect(next_url), session.signed_in(role, name))


@router.post("/logout", summary="Выйти")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    session = session_of(request)
    if session is not None and session.role is not None and not session.csrf_ok(csrf):
        return redirect("/console/")  # a forged sign-out does nothing
    return set_session(request, redirect("/console/login?out=1"), ConsoleSession.anonymous())


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    media = _STATIC.get(name)
    if media is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        STATIC_DIR / name, media_type=media, headers={"Cache-Control": "max-age=300"}
    )
