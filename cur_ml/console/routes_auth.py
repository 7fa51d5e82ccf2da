"""Sign-in with a personal or an environment token, sign-out, and the console's static files."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from cur_ml.auth import Authenticator
from cur_ml.auth.identity import env_fingerprint
from cur_ml.console.session import COOKIE, ConsoleSession
from cur_ml.console.web import (
    STATIC_DIR,
    clear_session,
    console_open,
    disabled,
    login_session,
    message,
    redirect,
    render,
    safe_next,
    session_of,
    set_login,
    set_session,
    settings_of,
)
from cur_ml.store.sessions import SessionStart
from cur_ml.store.users import clean_name

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()

_STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}


def _login_page(
    request: Request,
    session: ConsoleSession,
    *,
    next_url: str,
    name: str = "",
    error: str = "",
    notice: str = "",
    status: int = 200,
    retry_after: int | None = None,
) -> HTMLResponse:
    response = render(
        request,
        "login.html",
        {"next_url": next_url, "name": name, "error": error, "notice": notice},
        session=session,
        status=status,
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return set_login(request, response, session)


def _store_down(request: Request) -> HTMLResponse:
    log.exception("console: the store could not be read at sign-in")
    return message(
        request,
        None,
        "Хранилище недоступно",
        "Вход сейчас невозможен: повторите через минуту.",
        503,
    )


@router.get("/login", response_class=HTMLResponse, summary="Вход в консоль оператора")
def login_form(request: Request, next: str = "", out: str = "") -> Response:
    try:
        if not console_open(request):
            return disabled(request)
        if session_of(request) is not None:
            return redirect(safe_next(next))
    except SQLAlchemyError:
        return _store_down(request)
    notice = "Вы вышли из консоли." if out else ""
    return _login_page(request, login_session(request), next_url=safe_next(next), notice=notice)


@router.post("/login", response_class=HTMLResponse, summary="Войти по токену")
def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """A personal token signs in as its account (a name typed must be the account's); an
    environment token as its role, under the name typed. Failures are limited per address
    and per account (429 with Retry-After, the token not even looked at)."""
    try:
        if not console_open(request):
            return disabled(request)
    except SQLAlchemyError:
        return _store_down(request)
    name, next_url = clean_name(name), safe_next(next)
    anonymous = login_session(request)
    if not anonymous.csrf_ok(csrf):
        return _login_page(
            request,
            ConsoleSession.anonymous(),
            next_url=next_url,
            name=name,
            error="Форма устарела. Введите токен ещё раз.",
            status=400,
        )
    page = {"next_url": next_url, "name": name}
    if not token.strip():
        return _login_page(request, anonymous, **page, error="Введите токен.", status=403)
    auth: Authenticator = request.app.state.auth
    address = request.client.host if request.client is not None else None
    try:
        verdict = auth.check(token, address=address, name=name or None)
    except SQLAlchemyError:
        return _store_down(request)
    if verdict.retry_after is not None:
        wait = verdict.retry_after
        return _login_page(
            request,
            anonymous,
            **page,
            error=f"Слишком много неудачных попыток входа. Повторите через {wait} с.",
            status=429,
            retry_after=wait,
        )
    who = verdict.identity
    if who is None or who.role not in ("operator", "admin"):
        error = "Токен не подходит." if who is None else "Этот токен не открывает консоль."
        return _login_page(request, anonymous, **page, error=error, status=403)
    start = SessionStart(
        role=who.role,
        name=who.name or name or who.role,
        user_id=who.user_id,
        env_token=None if who.personal else env_fingerprint(settings_of(request), who.role),
    )
    try:
        request.app.state.sessions.end(request.cookies.get(COOKIE))  # one browser, one session
        session_id, _ = request.app.state.sessions.start(start)
    except SQLAlchemyError:
        return _store_down(request)
    return set_session(request, redirect(next_url), session_id)


@router.post("/logout", summary="Выйти")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    """Ends the session in the store: the cookie stops working, wherever it was copied."""
    try:
        session = session_of(request)
        if session is not None and not session.csrf_ok(csrf):
            return redirect("/console/")  # a forged sign-out does nothing
        if session is not None:
            request.app.state.sessions.end(request.cookies.get(COOKIE))
    except SQLAlchemyError:
        return _store_down(request)
    return clear_session(redirect("/console/login?out=1"))


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    media = _STATIC.get(name)
    if media is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        STATIC_DIR / name, media_type=media, headers={"Cache-Control": "max-age=300"}
    )
