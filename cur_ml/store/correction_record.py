"""The row of the `corrections` table, apart from its repository so that the modules the
repository relies on (review progress, versions) can query it without an import cycle."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cur_ml.store.db import Base, aware

__all__ = ["DERIVED", "UNDO", "CorrectionRecord", "is_undo", "taken_back", "undo_key"]

#: `source` of a row that followed a corrected reason (not an operator's own decision).
DERIVED = "derived"
#: `source` of a row that takes back an earlier one, restoring the value before it; its
#: key is `undo_key(key of that row)`, which survives an export and an import (ids do not).
UNDO = "undo"
_UNDO_PREFIX = "undo:"
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
    #: The region of the appeal (its prediction's; None: the default region).
    region: Mapped[str | None] = mapped_column(String(16), index=True)
    old_value: Mapped[str | None] = mapped_column(String(512))
    new_value: Mapped[str] = mapped_column(String(512))
    operator: Mapped[str] = mapped_column(String(128), index=True)
    comment: Mapped[str | None] = mapped_column(Text)
    #: `api` (an operator now), `admin`, `console`, `import` (history from a file),
    #: `derived` (followed a corrected reason) or `undo` (took a row back, see `undo_key`).
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
            "at": aware(self.created_at).isoformat() if self.created_at else None,
        }


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def undo_key(key: str) -> str:
    """The idempotency key of the undo of the row stored under `key`: one undo per row."""
    return _UNDO_PREFIX + _digest(key)


def is_undo(key: str, source: str) -> bool:
    return source == UNDO and key.startswith(_UNDO_PREFIX)


def taken_back(rows: Iterable[tuple[str, str]]) -> set[str]:
    """The keys, among (idempotency_key, source) pairs, of the rows an undo among them took
    back."""
    pairs = list(rows)
    undone = {key[len(_UNDO_PREFIX) :] for key, source in pairs if is_undo(key, source)}
    return {key for key, _ in pairs if undone and _digest(key) in undone}
