"""The `corrections` table: append-only history of what operators said a field should have been.

Nothing here is ever updated or deleted; the latest correction of a field wins. A
client-supplied `idempotency_key` makes retries safe: the same key stores one row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import BigInteger, DateTime, Engine, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cur_ml.store.db import Base

__all__ = ["CORRECTABLE_FIELDS", "CorrectionIn", "CorrectionRecord", "CorrectionRepository"]

CORRECTABLE_FIELDS = ("category", "reason", "urgency", "agency")
_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only


class CorrectionRecord(Base):
    """One correction event."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    #: The served prediction it corrects (None for imported history).
    prediction_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: The appeal's id in a labelled dataset (imported history) or as the caller sent it.
    appeal_id: Mapped[str | None] = mapped_column(String(256), index=True)
    field: Mapped[str] = mapped_column(String(16), index=True)
    old_value: Mapped[str | None] = mapped_column(String(512))
    new_value: Mapped[str] = mapped_column(String(512))
    operator: Mapped[str] = mapped_column(String(128), index=True)
    comment: Mapped[str | None] = mapped_column(Text)
    #: `api` (an operator now) or `import` (history from a file).
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "prediction_id": self.prediction_id,
            "appeal_id": self.appeal_id,
            "field": self.field,
            "old_value": self.old_value,
            "value": self.new_value,
            "operator": self.operator,
            "comment": self.comment,
            "source": self.source,
            "at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class CorrectionIn:
    """A correction to store (already validated by the caller)."""

    field: str
    new_value: str
    operator: str
    prediction_id: str | None = None
    appeal_id: str | None = None
    old_value: str | None = None
    comment: str | None = None
    idempotency_key: str | None = None
    source: str = "api"
    created_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key or str(uuid.uuid4()),
            "prediction_id": self.prediction_id,
            "appeal_id": self.appeal_id,
            "field": self.field,
            "old_value": self.old_value,
            "new_value": self.new_value,
            "operator": self.operator,
            "comment": self.comment,
            "source": self.source,
            "created_at": self.created_at or datetime.now(UTC),
        }


def _insert_ignoring_duplicates(engine: Engine):
    """INSERT ... ON CONFLICT (idempotency_key) DO NOTHING for the engine's dialect."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(engine.dialect.name)
    return insert(CorrectionRecord).on_conflict_do_nothing(index_elements=["idempotency_key"])


class CorrectionRepository:
    """Append and query corrections; every call is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_many(self, items: Sequence[CorrectionIn]) -> list[tuple[CorrectionRecord, bool]]:
        """Store corrections atomically; return each stored row and whether it is new.

        A key seen before returns the row stored then (a retry), not a duplicate.
        """
        rows = [item.row() for item in items]
        keys = [r["idempotency_key"] for r in rows]
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            before = set(
                session.scalars(
                    select(CorrectionRecord.idempotency_key).where(
                        CorrectionRecord.idempotency_key.in_(keys)
                    )
                )
            )
            if rows:
                session.execute(_insert_ignoring_duplicates(self.engine), rows)
            stored = {
                r.idempotency_key: r
                for r in session.scalars(
                    select(CorrectionRecord).where(CorrectionRecord.idempotency_key.in_(keys))
                )
            }
        seen: set[str] = set()
        out = []
        for key in keys:
            out.append((stored[key], key not in before and key not in seen))
            seen.add(key)
        return out

    def query(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        field: str | None = None,
        operator: str | None = None,
        prediction_id: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[CorrectionRecord]:
        """Corrections in id order (keyset paging: pass the last id seen as `after_id`)."""
        q = select(CorrectionRecord).where(CorrectionRecord.id > after_id)
        if since is not None:
            q = q.where(CorrectionRecord.created_at >= since)
        if until is not None:
            q = q.where(CorrectionRecord.created_at < until)
        if field is not None:
            q = q.where(CorrectionRecord.field == field)
        if operator is not None:
            q = q.where(CorrectionRecord.operator == operator)
        if prediction_id is not None:
            q = q.where(CorrectionRecord.prediction_id == prediction_id)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(q.order_by(CorrectionRecord.id).limit(limit)))

    def count(self, after_id: int = 0) -> int:
        with Session(self.engine) as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(CorrectionRecord)
                    .where(CorrectionRecord.id > after_id)
                )
                or 0
            )

    def last_id(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.max(CorrectionRecord.id))) or 0

    def events(self, source: str | None = None) -> pd.DataFrame:
        """All events as a frame (prediction_id, appeal_id, at, field, new, old), oldest first."""
        q = select(
            CorrectionRecord.id,
            CorrectionRecord.prediction_id,
            CorrectionRecord.appeal_id,
            CorrectionRecord.created_at.label("at"),
            CorrectionRecord.field,
            CorrectionRecord.new_value.label("new"),
            CorrectionRecord.old_value.label("old"),
            CorrectionRecord.source,
        )
        if source is not None:
            q = q.where(CorrectionRecord.source == source)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(q.order_by(CorrectionRecord.id)).mappings().all())
        if frame.empty:
            return pd.DataFrame(
                columns=["id", "prediction_id", "appeal_id", "at", "field", "new", "old", "source"]
            )
        return frame
