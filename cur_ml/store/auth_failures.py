"""The `auth_failures` table: failed sign-ins and bearer checks, per client address and account.

A sliding-window log: one row per failure and key (`addr:<ip>`, `user:<name>`), counted
over the last window. It lives in the store so that every worker and replica sees the same
counts; rows older than the window are deleted as new ones come in. Successes write nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, DateTime, Engine, Index, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from cur_ml.store.db import Base, aware

__all__ = ["AuthFailure", "FailureLog"]

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only


class AuthFailure(Base):
    """One failed attempt under one key."""

    __tablename__ = "auth_failures"
    __table_args__ = (Index("ix_auth_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class FailureLog:
    """Record failures and count them over a sliding window."""

    def __init__(self, engine: Engine, window: timedelta) -> None:
        self.engine = engine
        self.window = window

    def record(self, keys: Sequence[str], now: datetime | None = None) -> dict[str, list[datetime]]:
        """Add one failure under each key; per key, the failures inside the window (oldest
        first, this one included). Older rows of these keys go in the same transaction."""
        now = now or datetime.now(UTC)
        since = now - self.window
        keys = [k[:160] for k in keys]
        with self.engine.begin() as conn:
            conn.execute(AuthFailure.__table__.insert(), [{"key": k, "at": now} for k in keys])
            conn.execute(delete(AuthFailure).where(AuthFailure.at < since))
            rows = conn.execute(
                select(AuthFailure.key, AuthFailure.at)
                .where(AuthFailure.key.in_(keys), AuthFailure.at >= since)
                .order_by(AuthFailure.at)
            ).all()
        out: dict[str, list[datetime]] = {k: [] for k in keys}
        for key, at in rows:
            out[key].append(aware(at))
        return out

    def recent(self, keys: Sequence[str], now: datetime | None = None) -> dict[str, list[datetime]]:
        """Per key, the failures inside the window (oldest first)."""
        since = (now or datetime.now(UTC)) - self.window
        keys = [k[:160] for k in keys]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(AuthFailure.key, AuthFailure.at)
                .where(AuthFailure.key.in_(keys), AuthFailure.at >= since)
                .order_by(AuthFailure.at)
            ).all()
        out: dict[str, list[datetime]] = {k: [] for k in keys}
        for key, at in rows:
            out[key].append(aware(at))
        return out

    def count(self) -> int:
        """Rows held (for tests and housekeeping checks)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(AuthFailure)).scalar_one())
