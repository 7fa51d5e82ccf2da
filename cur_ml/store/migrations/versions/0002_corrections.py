"""corrections (append-only) and retrain runs

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


def upgrade() -> None:
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
