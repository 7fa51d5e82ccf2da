"""corrections (append-only), retrain runs, review-queue columns of predictions

Revision ID: 0002_corrections
Revises: 0001_predictions
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_corrections"
down_revision: str | None = "0001_predictions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HEADS = ("category", "reason", "urgency", "agency")
_PREDICTIONS = sa.table(
    "predictions",
    sa.column("prediction_id", sa.String),
    sa.column("appeal", sa.JSON),
    sa.column("prediction", sa.JSON),
    sa.column("district", sa.String),
    sa.column("source", sa.String),
    sa.column("min_confidence", sa.Float),
)


def _clip(value: object, length: int) -> str | None:
    text = str(value).replace("\x00", "").strip() if value is not None else ""
    return text[:length] or None


def _backfill(batch: int = 1_000) -> None:
    """Fill the new columns of predictions recorded before them, from their JSON."""
    conn = op.get_bind()
    last = ""
    while True:
        rows = conn.execute(
            sa.select(
                _PREDICTIONS.c.prediction_id, _PREDICTIONS.c.appeal, _PREDICTIONS.c.prediction
            )
            .where(_PREDICTIONS.c.prediction_id > last)
            .order_by(_PREDICTIONS.c.prediction_id)
            .limit(batch)
        ).all()
        if not rows:
            return
        updates = []
        for pid, appeal, prediction in rows:
            appeal, confidence = appeal or {}, (prediction or {}).get("confidence") or {}
            scores = [float(confidence[h]) for h in _HEADS if confidence.get(h) is not None]
            updates.append(
                {
                    "pid": pid,
                    "district": _clip(appeal.get("district"), 256),
                    "source": _clip(appeal.get("source"), 64),
                    "min_confidence": min(scores) if scores else None,
                }
            )
        conn.execute(
            _PREDICTIONS.update()
            .where(_PREDICTIONS.c.prediction_id == sa.bindparam("pid"))
            .values(
                district=sa.bindparam("district"),
                source=sa.bindparam("source"),
                min_confidence=sa.bindparam("min_confidence"),
            ),
            updates,
        )
        last = rows[-1][0]


def upgrade() -> None:
    # Review queue: filter by district / source, order by the least confident head.
    op.add_column("predictions", sa.Column("district", sa.String(256), nullable=True))
    op.add_column("predictions", sa.Column("source", sa.String(64), nullable=True))
    op.add_column("predictions", sa.Column("min_confidence", sa.Float(), nullable=True))
    for column in ("district", "source", "min_confidence"):
        op.create_index(f"ix_predictions_{column}", "predictions", [column])
    _backfill()

    op.create_table(
        "corrections",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
        sa.Column("prediction_id", sa.String(36), nullable=True),
        sa.Column("appeal_id", sa.String(256), nullable=True),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("old_value", sa.String(512), nullable=True),
        sa.Column("new_value", sa.String(512), nullable=False),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    for column in ("prediction_id", "appeal_id", "field", "operator", "created_at"):
        op.create_index(f"ix_corrections_{column}", "corrections", [column])
    op.create_table(
        "retrain_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("corrections_seen", sa.BigInteger(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_retrain_runs_started_at", "retrain_runs", ["started_at"])


def downgrade() -> None:
    op.drop_table("retrain_runs")
    op.drop_table("corrections")
    for column in ("min_confidence", "source", "district"):
        op.drop_index(f"ix_predictions_{column}", "predictions")
    with op.batch_alter_table("predictions") as batch:  # SQLite cannot drop columns in place
        for column in ("min_confidence", "source", "district"):
            batch.drop_column(column)
