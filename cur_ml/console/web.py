"""What every console page shares: templates, the session cookie, the gate, the stores."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from cur_ml.auth import RegionAccess
from cur_ml.auth.identity import env_fingerprint
from cur_ml.console.session import COOKIE, LOGIN_COOKIE, MAX_AGE, ConsoleSession, enabled
from cur_ml.errors import CurMlError
from cur_ml.settings import Settings

__all__ = [
    "HEADS",
    "HEAD_TITLES",
    "MSK",
    "STATIC_DIR",
    "URGENCY_TITLES",
    "Stores",
    "access_of",
    "clear_session",
    "console_open",
    "disabled",
    "gate",
    "login_session",
    "message",
    "not_ready",
    "redirect",
    "region_model",
    "render",
    "safe_next",
    "session_of",
    "set_login",
    "set_session",
    "settings_of",
    "stores",
]

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
HEADS = ("category", "reason", "urgency", "agency")
HEAD_TITLES = {
    "category": "Категория",
    "reason": "Причина",
    "urgency": "Срочность",
    "agency": "Ведомство",
}
URGENCY_TITLES = {"high": "высокая", "medium": "средняя", "low": "низкая"}
_ISSUES = {
    "low_confidence": "низкая уверенность",
    "small_margin": "близкая альтернатива",
    "unknown_district": "неизвестный район",
    "heads_disagree": "причина и ведомство не согласуются",
    "not_russian": "текст не на русском",
    "text_too_short": "слишком короткий текст",
    "place_unknown": "место не найдено",
    "place_contradicts_point": "район не совпадает с точкой",
    "only_tags_or_links": "только хэштеги, упоминания или ссылки",
}
#: Moscow has kept UTC+3 all year since 2014; times are shown as МСК.
MSK = timezone(timedelta(hours=3), "МСК")
#: No inline script or style anywhere: the policy can forbid both.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(value: datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the store keeps UTC (SQLite drops the offset)
    return value.astimezone(MSK).strftime("%d.%m.%Y %H:%M")


def _when_local(value: str) -> str:
    """A citizen's own time (no zone in the appeal): reformatted, not converted."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return _when(when) if when.tzinfo is not None else when.strftime("%d.%m.%Y %H:%M")


def _pct(value: Any) -> str:
    try:
        return f"{float(value) * 100:.0f}%"
    except (TypeError, ValueError):
        return "—"


def _label(value: Any, head: str = "") -> str:
    """A label as an operator reads it (urgency in Russian; others are Russian already)."""
    text = "" if value is None else str(value)
    return URGENCY_TITLES.get(text, text) if head == "urgency" else text


def _issues(codes: Any) -> str:
    """Review reasons in Russian, heads grouped: 'низкая уверенность: причина, ведомство; ...'."""
    grouped: dict[str, list[str]] = {}
    for code in codes or ():
        kind, _, head = str(code).partition(":")
        heads = grouped.setdefault(kind, [])
        if head:
            heads.append(head)
    parts = []
    for kind, heads in grouped.items():
        text = _ISSUES.get(kind, kind)
        order = sorted(set(heads), key=lambda h: HEADS.index(h) if h in HEADS else len(HEADS))
        names = ", ".join(HEAD_TITLES.get(h, h).lower() for h in order)
        parts.append(f"{text}: {names}" if names else text)
    return "; ".join(parts)


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters.update(when=_when, when_local=_when_local, pct=_pct, label=_label, issues=_issues)
_env.globals.update(HEADS=HEADS, HEAD_TITLES=HEAD_TITLES)


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def access_of(request: Request, session: ConsoleSession) -> RegionAccess:
    """The regions the signed-in person works in: their account's, or every region of the
    deployment with an environment token."""
    return RegionAccess.of(session.regions, settings_of(request))


def region_model(request: Request, region: str) -> Any:
    """The model serving `region`, loaded on first use (None while it has none)."""
    regions = request.app.state.regions
    try:
        return regions.get(region).slot.model
    except CurMlError:  # still loading, no model for the region yet
        serving = regions.peek(region)
        return serving.slot.model if serving is not None else None


_UNKNOWN = object()


def console_open(request: Request) -> bool:
    """The console works while an environment token or an active account can sign in (the
    store's errors are the caller's to answer: 503, not «switched off»)."""
    if enabled(settings_of(request)):
        return True
    auth = getattr(request.app.state, "auth", None)
    return auth is not None and auth.can_pass("operator")


def session_of(request: Request) -> ConsoleSession | None:
    """The live session of the request's cookie (looked up once per request), or None.

    A session opened with an environment token holds only while that token is configured."""
    known = getattr(request.state, "console_session", _UNKNOWN)
    if known is not _UNKNOWN:
        return known
    session = None
    repo = getattr(request.app.state, "sessions", None)
    raw = request.cookies.get(COOKIE)
    record = repo.get(raw) if repo is not None and raw else None
    if record is not None and (
        record.env_token is None
        or record.env_token == env_fingerprint(settings_of(request), record.role)
    ):
        session = ConsoleSession.of(record, settings_of(request).default_region)
    request.state.console_session = session
    return session


def login_session(request: Request) -> ConsoleSession:
    """The sign-in form's anonymous session: its CSRF token is the login cookie's value."""
    raw = request.cookies.get(LOGIN_COOKIE, "")
    return ConsoleSession.anonymous(raw if 20 <= len(raw) <= 64 else None)


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=strict, limited to /console; Secure over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def set_session(request: Request, response: Response, session_id: str) -> Response:
    """The cookie of a new session: its id only; the form's login cookie is dropped."""
    _cookie(request, response, COOKIE, session_id, MAX_AGE)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


def set_login(request: Request, response: Response, session: ConsoleSession) -> Response:
    """The sign-in form's CSRF cookie (an hour to fill the form in)."""
    _cookie(request, response, LOGIN_COOKIE, session.csrf, 3600)
    return response


def clear_session(response: Response) -> Response:
    response.delete_cookie(COOKIE, path="/console")
    return response


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    session: ConsoleSession | None,
    status: int = 200,
) -> HTMLResponse:
    html = _env.get_template(template).render(session=session, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def message(
    request: Request, session: ConsoleSession | None, title: str, text: str, status: int
) -> HTMLResponse:
    """A page that only says something (disabled console, missing appeal, stale form...)."""
    return render(
        request, "message.html", {"title": title, "text": text}, session=session, status=status
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def disabled(request: Request) -> HTMLResponse:
    return message(
        request,
        None,
        "Консоль выключена",
        "Консоль оператора выключена: нет ни одной учётной записи (cur-ml users add) и не задан "
        "ни CUR_ML_OPERATOR_TOKEN, ни CUR_ML_ADMIN_TOKEN.",
        403,
    )


_LOCAL = re.compile(r"/console(/[^\\]*)?")


def safe_next(url: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if url and _LOCAL.fullmatch(url) and not url.startswith("/console//"):
        return url
    return "/console/"


def gate(request: Request, *, admin: bool = False) -> ConsoleSession | Response:
    """The signed-in session, or the response to send instead (disabled, sign in, forbidden,
    the store unavailable)."""
    try:
        if not console_open(request):
            return disabled(request)
        session = session_of(request)
    except SQLAlchemyError:
        return message(
            request,
            None,
            "Хранилище недоступно",
            "Сессию не удалось проверить: хранилище недоступно. Обновите страницу через минуту.",
            503,
        )
    if session is None or session.role is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/console/login?next={quote(target, safe='')}")
    if admin and not session.is_admin:
        return message(
            request, session, "Нет доступа", "Это действие доступно только администратору.", 403
        )
    return session


@dataclass(frozen=True)
class Stores:
    """The store objects the app's lifespan opened (shared with the JSON API)."""

    predictions: Any
    corrections: Any
    review_queue: Any
    retrain_jobs: Any


def stores(request: Request) -> Stores | None:
    state = request.app.state
    found = {
        name: getattr(state, name, None)
        for name in ("predictions", "corrections", "review_queue", "retrain_jobs")
    }
    if any(v is None for k, v in found.items() if k != "retrain_jobs"):
        return None
    return Stores(**found)


def find_appeal(
    request: Request, session: ConsoleSession, prediction_id: str
) -> tuple[Stores, Any] | Response:
    """The stores and the appeal `prediction_id` names, or the page that says why not (the
    store not ready, no such appeal: 404; an appeal of another region than the person's is
    answered as one that does not exist)."""
    found = stores(request)
    if found is None:
        return not_ready(request, session)
    record = found.predictions.get(prediction_id[:64])
    if record is None or not access_of(request, session).sees(record.region):
        return message(
            request, session, "Не найдено", "Обращения с таким номером предсказания нет.", 404
        )
    return found, record


def not_ready(request: Request, session: ConsoleSession | None) -> HTMLResponse:
    return message(
        request,
        session,
        "Сервис запускается",
        "Хранилище ещё не открыто. Обновите страницу через несколько секунд.",
        503,
    )
