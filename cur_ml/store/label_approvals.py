"""The `label_approvals` table: labels an admin let in that no served model knew.

A correction may only carry a label of the served model, or one approved here: who
approved which label of which field, when, and (when it came with one) the correction
that introduced it. Rows are never updated or deleted; approving a label twice keeps the
first record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    tuple_,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from cur_ml.store.db import Base, aware

__all__ = ["LabelApproval", "LabelApprovalIn", "LabelApprovalRepository", "insert_approvals"]

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only


class LabelApproval(Base):
    """One label of one field, approved by an admin."""

    __tablename__ = "label_approvals"
    __table_args__ = (UniqueConstraint("field", "label", name="uq_label_approvals_field_label"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    field: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(512))
    approved_by: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    #: The correction that brought the label in (None: approved on its own).
    prediction_id: Mapped[str | None] = mapped_column(String(36))
    correction_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "field": self.field,
            "label": self.label,
            "approved_by": self.approved_by,
            "comment": self.comment,
            "prediction_id": self.prediction_id,
            "correction_key": self.correction_key,
            "at": aware(self.created_at).isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class LabelApprovalIn:
    """A label to approve (validated by the caller)."""

    field: str
    label: str
    approved_by: str
    comment: str | None = None
    prediction_id: str | None = None
    correction_key: str | None = None
    #: When it was approved: now, unless history is imported.
    created_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "label": self.label,
            "approved_by": self.approved_by,
            "comment": self.comment,
            "prediction_id": self.prediction_id,
            "correction_key": self.correction_key,
            "created_at": self.created_at or datetime.now(UTC),
        }


def _insert_ignoring_duplicates(engine: Engine):
    """INSERT ... ON CONFLICT (field, label) DO NOTHING for the engine's dialect."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(engine.dialect.name)
    return insert(LabelApproval).on_conflict_do_nothing(index_elements=["field", "label"])


def _find(
    session: Session, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], LabelApproval]:
    wanted = sorted(set(pairs))
    out: dict[tuple[str, str], LabelApproval] = {}
    for start in range(0, len(wanted), 500):
        q = select(LabelApproval).where(
            tuple_(LabelApproval.field, LabelApproval.label).in_(wanted[start : start + 500])
        )
        out.update(((r.field, r.label), r) for r in session.scalars(q))
    return out


def insert_approvals(
    session: Session, items: Iterable[LabelApprovalIn]
) -> list[tuple[LabelApproval, bool]]:
    """Approve labels inside the caller's transaction; each record and whether it is new."""
    items = list(items)
    if not items:
        return []
    rows = [item.row() for item in items]
    stmt = _insert_ignoring_duplicates(session.get_bind()).returning(
        LabelApproval.field, LabelApproval.label
    )
    inserted = {tuple(r) for r in session.execute(stmt, rows)}
    found = _find(session, ((i.field, i.label) for i in items))
    out, seen = [], set()
    for item in items:
        key = (item.field, item.label)
        out.append((found[key], key in inserted and key not in seen))
        seen.add(key)
    return out


class LabelApprovalRepository:
    """Approve and look up labels; every call is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def approve(self, item: LabelApprovalIn) -> tuple[LabelApproval, bool]:
        """Record an approval (committed on return); the record and whether it is new."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            return insert_approvals(session, [item])[0]

    def approved(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the (field, label) pairs were approved."""
        with Session(self.engine) as session:
            return set(_find(session, pairs))

    def by_field(self) -> dict[str, set[str]]:
        """Every approved label, per field (what retraining may learn beyond its base data)."""
        out: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for field, label in conn.execute(select(LabelApproval.field, LabelApproval.label)):
                out.setdefault(field, set()).add(label)
        return out

    def all(self, field: str | None = None, limit: int = 1_000) -> list[LabelApproval]:
        """Approvals, oldest first."""
        q = select(LabelApproval).order_by(LabelApproval.id).limit(limit)
        if field is not None:
            q = q.where(LabelApproval.field == field)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(q))
