"""The `sessions` table: console sessions kept on the server.

The browser's cookie holds only a random session id (256 bits); the store keeps its
SHA-256, so whoever reads the table cannot take a session over. A session is valid while it
has not ended (sign-out, revocation), its account is not revoked, it has been used within
the idle timeout, and it is younger than its absolute lifetime. Every worker and replica
reads the same rows, so ending a session ends it everywhere at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    column,
    delete,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from cur_ml.store.db import Base, aware

__all__ = ["SessionRecord", "SessionRepository", "SessionStart"]

_ID = BigInteger().with_variant(Integer, "sqlite")  # the type of users.id
#: How stale `last_seen_at` may get before a request writes it again (one write a minute at
#: most per session, not one per page view).
_TOUCH_EVERY = timedelta(seconds=60)
#: Ended or expired sessions are deleted this long after (kept a while for a look in the log).
_KEEP_ENDED = timedelta(days=7)
#: The columns of `users` a session looks at (its model lives in cur_ml.store.users, which
#: imports this module to end sessions on revocation).
_USERS = table("users", column("id"), column("revoked_at"), column("regions"))


class SessionRecord(Base):
    """One signed-in console session."""

    __tablename__ = "sessions"

    #: SHA-256 (hex) of the id in the cookie.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The personal account (None: signed in with an environment token).
    user_id: Mapped[int | None] = mapped_column(_ID, ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    #: The name corrections are stored under.
    name: Mapped[str] = mapped_column(String(128))
    #: With an environment token: a fingerprint of it, so changing the token ends the session.
    env_token: Mapped[str | None] = mapped_column(String(64))
    #: The CSRF token of this session's forms.
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The absolute end, however busy the session is.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Not a column: the account's regions (`users.regions`), read with the session by
    #: `SessionRepository.get`, so a change of them holds from the next page on.
    account_regions = None  # str | None; a plain attribute, not mapped


@dataclass(frozen=True)
class SessionStart:
    """Who a new session is for."""

    role: str
    name: str
    user_id: int | None = None
    env_token: str | None = None


def session_key(raw: str) -> str:
    """What the store keeps of a cookie's session id."""
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()


class SessionRepository:
    """Start, find, touch and end console sessions (each call one short transaction)."""

    def __init__(self, engine: Engine, *, idle: timedelta, lifetime: timedelta) -> None:
        self.engine = engine
        self.idle = idle
        self.lifetime = lifetime

    def start(self, who: SessionStart) -> tuple[str, SessionRecord]:
        """A new session: the id for the cookie (never stored) and its record."""
        raw = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        record = SessionRecord(
            id=session_key(raw),
            user_id=who.user_id,
            role=who.role,
            name=who.name,
            env_token=who.env_token,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.lifetime,
        )
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.add(record)
            # Housekeeping on sign-in (rare, and never on a page view).
            cutoff = now - _KEEP_ENDED
            session.execute(
                delete(SessionRecord).where(
                    or_(SessionRecord.ended_at < cutoff, SessionRecord.expires_at < cutoff)
                )
            )
        return raw, record

    def get(self, raw: str | None, now: datetime | None = None) -> SessionRecord | None:
        """The live session behind a cookie's id, or None (unknown, ended, revoked, idle too
        long, too old); marks it seen (at most once a minute)."""
        if not raw or len(raw) > 128:
            return None
        now = now or datetime.now(UTC)
        key = session_key(raw)
        q = (
            select(SessionRecord, _USERS.c.revoked_at, _USERS.c.regions)
            .outerjoin(_USERS, _USERS.c.id == SessionRecord.user_id)
            .where(SessionRecord.id == key)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            found = session.execute(q).first()
        if found is None:
            return None
        record, revoked_at, regions = found
        if record.ended_at is not None or revoked_at is not None:
            return None
        record.account_regions = regions
        if now >= aware(record.expires_at) or now - aware(record.last_seen_at) > self.idle:
            return None
        if now - aware(record.last_seen_at) >= _TOUCH_EVERY:
            with self.engine.begin() as conn:
                conn.execute(
                    update(SessionRecord).where(SessionRecord.id == key).values(last_seen_at=now)
                )
            record.last_seen_at = now
        return record

    def end(self, raw: str | None) -> bool:
        """Sign-out: the session stops working at once, whoever holds a copy of the cookie."""
        if not raw:
            return False
        with self.engine.begin() as conn:
            done = conn.execute(
                update(SessionRecord)
                .where(SessionRecord.id == session_key(raw), SessionRecord.ended_at.is_(None))
                .values(ended_at=datetime.now(UTC))
            )
        return done.rowcount > 0
