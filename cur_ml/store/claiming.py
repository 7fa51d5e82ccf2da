"""Claims on appeals: opening an appeal holds it for a few minutes, so that two operators
working the queue at once are handed different appeals.

A claim is one row of `claims` per appeal (migration 0005). Taking it is one atomic
INSERT ... ON CONFLICT DO UPDATE that only overwrites a claim that has expired or is the
taker's own, so of two operators racing for the same appeal exactly one gets it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, or_, select
from sqlalchemy.orm import Session

from cur_ml.store.claims import Claim
from cur_ml.store.db import aware

__all__ = ["Claims", "Hold"]


@dataclass(frozen=True)
class Hold:
    """A live claim: who holds which appeal until when."""

    prediction_id: str
    holder: str
    user_id: int | None
    expires_at: datetime

    def is_mine(self, holder: str) -> bool:
        return self.holder == holder


def _hold(row: Claim) -> Hold:
    return Hold(row.prediction_id, row.holder, row.user_id, aware(row.expires_at))


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(Claim)


class Claims:
    """Take, read and release claims; every call is one short transaction."""

    def __init__(self, engine: Engine, minutes: float) -> None:
        self.engine = engine
        self.length = timedelta(minutes=minutes)

    def take(
        self,
        prediction_id: str,
        holder: str,
        user_id: int | None = None,
        now: datetime | None = None,
    ) -> Hold:
        """Hold the appeal for the claim's length from now, unless someone else holds it; the
        claim in force afterwards (the taker's, or the other holder's)."""
        now = now or datetime.now(UTC)
        values = {
            "prediction_id": prediction_id,
            "holder": holder,
            "user_id": user_id,
            "claimed_at": now,
            "expires_at": now + self.length,
        }
        stmt = _insert(self.engine.dialect.name).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["prediction_id"],
            set_={k: stmt.excluded[k] for k in ("holder", "user_id", "claimed_at", "expires_at")},
            where=or_(Claim.expires_at <= now, Claim.holder == holder),
        )
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.execute(stmt)
            row = session.get(Claim, prediction_id)
            assert row is not None  # inserted, updated, or held by someone else
            return _hold(row)

    def release(self, prediction_id: str, holder: str) -> None:
        """Let go of the appeal (only the holder's own claim)."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                delete(Claim).where(Claim.prediction_id == prediction_id, Claim.holder == holder)
            )

    def held(self, ids: Sequence[str], now: datetime | None = None) -> dict[str, Hold]:
        """The live claims among `ids`."""
        now = now or datetime.now(UTC)
        wanted = sorted(set(ids))
        out: dict[str, Hold] = {}
        with Session(self.engine) as session:
            for start in range(0, len(wanted), 500):
                q = select(Claim).where(
                    Claim.prediction_id.in_(wanted[start : start + 500]), Claim.expires_at > now
                )
                out.update((r.prediction_id, _hold(r)) for r in session.scalars(q))
        return out

    def held_by_others(
        self, ids: Sequence[str], holder: str, now: datetime | None = None
    ) -> set[str]:
        """Which of `ids` someone other than `holder` holds now."""
        return {pid for pid, h in self.held(ids, now).items() if not h.is_mine(holder)}
