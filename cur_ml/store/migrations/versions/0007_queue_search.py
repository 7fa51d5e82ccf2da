"""review queue around deadlines: due_at and review codes of predictions, text search index

Revision ID: 0007_queue_search
Revises: 0006_review_by_field
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision: str = "0007_queue_search"
down_revision: str | None = "0006_review_by_field"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: As `cur_ml.store.predictions.LOCAL_ZONE` (a migration keeps its own copy: it must not
#: change when the package does).
_LOCAL = timezone(timedelta(hours=3))
_PREDICTIONS = sa.table(
    "predictions",
    sa.column("prediction_id", sa.String),
    sa.column("prediction", sa.JSON),
    sa.column("due_at", sa.DateTime(timezone=True)),
    sa.column("review_codes", sa.String),
)
_SEARCH = "to_tsvector('russian', appeal ->> 'text')"


def _due(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo is not None else when.replace(tzinfo=_LOCAL)).astimezone(UTC)


def _codes(reasons: object) -> str | None:
    if not isinstance(reasons, list):
        return None
    codes = [str(c).replace("|", "") for c in reasons if c]
    return ("|" + "|".join(codes) + "|")[:1024] if codes else None


def _backfill(batch: int = 1_000) -> None:
    """Fill the new columns of predictions recorded before them, from their JSON."""
    conn = op.get_bind()
    last = ""
    while True:
        rows = conn.execute(
            sa.select(_PREDICTIONS.c.prediction_id, _PREDICTIONS.c.prediction)
            .where(_PREDICTIONS.c.prediction_id > last)
            .order_by(_PREDICTIONS.c.prediction_id)
            .limit(batch)
        ).all()
        if not rows:
            return
        updates = [
            {
                "pid": pid,
                "due_at": _due((prediction or {}).get("due_at")),
                "review_codes": _codes((prediction or {}).get("review_reasons")),
            }
            for pid, prediction in rows
        ]
        conn.execute(
            _PREDICTIONS.update()
            .where(_PREDICTIONS.c.prediction_id == sa.bindparam("pid"))
            .values(due_at=sa.bindparam("due_at"), review_codes=sa.bindparam("review_codes")),
            updates,
        )
        last = rows[-1][0]


def upgrade() -> None:
    op.add_column("predictions", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("predictions", sa.Column("review_codes", sa.String(1024), nullable=True))
    op.create_index("ix_predictions_due_at", "predictions", ["due_at"])
    _backfill()
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_predictions_text_search",
            "predictions",
            [sa.text(_SEARCH)],
            postgresql_using="gin",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_predictions_text_search", "predictions")
    op.drop_index("ix_predictions_due_at", "predictions")
    with op.batch_alter_table("predictions") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("review_codes")
        batch.drop_column("due_at")
