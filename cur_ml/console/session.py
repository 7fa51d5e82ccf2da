"""The console's session: who signed in, as which role, and the CSRF token of their forms.

The session lives in one cookie, signed with HMAC-SHA256 under a key derived from the
operator and admin tokens (so every worker agrees on it, and changing a token signs
everyone out). Nothing secret is stored in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import Literal

from cur_ml.settings import Settings

__all__ = [
    "COOKIE",
    "MAX_AGE",
    "ConsoleSession",
    "dumps",
    "enabled",
    "loads",
    "role_for",
]

Role = Literal["operator", "admin"]
COOKIE = "cur_ml_console"
#: A session ends after this many seconds (a working day and a half).
MAX_AGE = 12 * 3600
_CONTEXT = b"cur-ml console session v1\x00"


@dataclass(frozen=True)
class ConsoleSession:
    """A visitor's session; `role` is None until they sign in."""

    csrf: str
    role: Role | None = None
    name: str = ""
    issued: int = 0

    @classmethod
    def anonymous(cls) -> ConsoleSession:
        return cls(csrf=secrets.token_urlsafe(24), issued=int(time.time()))

    def signed_in(self, role: Role, name: str) -> ConsoleSession:
        """A fresh session (new CSRF token) for someone who just proved `role`."""
        return replace(ConsoleSession.anonymous(), role=role, name=name or role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def csrf_ok(self, given: str) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), self.csrf.encode())


def _tokens(settings: Settings) -> dict[Role, bytes]:
    out: dict[Role, bytes] = {}
    for role, secret in (("operator", settings.operator_token), ("admin", settings.admin_token)):
        if secret is not None and secret.get_secret_value():
            out[role] = secret.get_secret_value().encode("utf-8")
    return out


def enabled(settings: Settings) -> bool:
    """The console works only while an operator or an admin token is configured."""
    return bool(_tokens(settings))


def role_for(settings: Settings, token: str) -> Role | None:
    """The role `token` proves (admin wins when both match), compared in constant time."""
    given = token.strip().encode("utf-8", "surrogateescape")
    hits = {role: secrets.compare_digest(given, t) for role, t in _tokens(settings).items()}
    if hits.get("admin"):
        return "admin"
    return "operator" if hits.get("operator") else None


def _key(settings: Settings) -> bytes:
    tokens = _tokens(settings)
    material = _CONTEXT + tokens.get("operator", b"") + b"\x00" + tokens.get("admin", b"")
    return hashlib.sha256(material).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def dumps(settings: Settings, session: ConsoleSession) -> str:
    """The cookie value: base64(JSON) '.' base64(HMAC)."""
    body = json.dumps(
        {"c": session.csrf, "r": session.role, "n": session.name, "t": session.issued},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    payload = _b64(body)
    mac = hmac.new(_key(settings), payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def loads(
    settings: Settings, cookie: str | None, now: float | None = None
) -> ConsoleSession | None:
    """The session in `cookie`, or None when it is missing, forged, expired or stale.

    A role is kept only while its token is still configured.
    """
    if not cookie or "." not in cookie or len(cookie) > 4096:
        return None
    payload, _, mac = cookie.partition(".")
    expected = hmac.new(_key(settings), payload.encode("ascii", "replace"), hashlib.sha256)
    try:
        if not hmac.compare_digest(_unb64(mac), expected.digest()):
            return None
        data = json.loads(_unb64(payload))
        session = ConsoleSession(
            csrf=str(data["c"]),
            role=data.get("r"),
            name=str(data.get("n") or ""),
            issued=int(data.get("t") or 0),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if (now or time.time()) - session.issued > MAX_AGE:
        return None
    if session.role is not None and session.role not in _tokens(settings):
        return None
    return session
