"""The console's session: who signed in, as which role, and the CSRF token of their forms.

Sessions live in the store (`cur_ml.store.sessions`); the browser's cookie holds only the
session's random id. Sign-out and revoking the account end a session at once, wherever
its cookie was copied to; a session also ends after `CUR_ML_SESSION_IDLE_MINUTES` without
a page view, and 12 hours after sign-in. One opened with an environment token ends when
that token changes.

Before sign-in, the form's CSRF token is a random value in a second cookie, which the form
must send back (double submit): nothing is stored for visitors who have not signed in.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import Engine

from cur_ml.settings import Settings
from cur_ml.store.sessions import SessionRecord, SessionRepository
from cur_ml.store.users import account_regions

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "MAX_AGE",
    "ConsoleSession",
    "console_sessions",
    "enabled",
]

Role = Literal["operator", "admin"]
COOKIE = "cur_ml_console"
#: The sign-in form's CSRF token, before there is a session.
LOGIN_COOKIE = "cur_ml_console_login"
#: A session ends this many seconds after sign-in however busy (a working day and a half).
MAX_AGE = 12 * 3600


@dataclass(frozen=True)
class ConsoleSession:
    """A visitor's session; `role` is None until they sign in."""

    csrf: str
    role: Role | None = None
    #: Whom corrections are stored under: the account's name, or the name typed with a
    #: shared (environment) token.
    name: str = ""
    #: The personal account (None: an environment token).
    user_id: int | None = None
    #: The regions the account works in (None: every region; an environment token).
    regions: tuple[str, ...] | None = None

    @classmethod
    def anonymous(cls, csrf: str | None = None) -> ConsoleSession:
        return cls(csrf=csrf or secrets.token_urlsafe(24))

    @classmethod
    def of(cls, record: SessionRecord, default_region: str) -> ConsoleSession:
        """The session of `record`; an account's regions as they are now (NULL: the
        deployment's default region)."""
        regions = None
        if record.user_id is not None:
            regions = account_regions(record.account_regions, default_region)
        return cls(
            csrf=record.csrf,
            role=record.role,  # type: ignore[arg-type]
            name=record.name,
            user_id=record.user_id,
            regions=regions,
        )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def personal(self) -> bool:
        return self.user_id is not None

    def csrf_ok(self, given: str) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), self.csrf.encode())


def console_sessions(settings: Settings, engine: Engine) -> SessionRepository:
    """The store's console sessions with this deployment's idle timeout."""
    return SessionRepository(
        engine,
        idle=timedelta(minutes=settings.session_idle_minutes),
        lifetime=timedelta(seconds=MAX_AGE),
    )


def _tokens(settings: Settings) -> dict[Role, bytes]:
    out: dict[Role, bytes] = {}
    for role, secret in (("operator", settings.operator_token), ("admin", settings.admin_token)):
        if secret is not None and secret.get_secret_value():
            out[role] = secret.get_secret_value().encode("utf-8")
    return out


def enabled(settings: Settings) -> bool:
    """Whether an environment token opens the console (personal accounts may open it too:
    `cur_ml.console.web.console_open` asks the store)."""
    return bool(_tokens(settings))
