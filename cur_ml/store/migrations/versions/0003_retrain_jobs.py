"""retrain_runs as a job queue: options, worker, claimed_at, heartbeat_at, status index

Revision ID: 0003_retrain_jobs
Revises: 0002_corrections
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_retrain_jobs"
down_revision: str | None = "0002_corrections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Runs recorded before the queue keep NULLs: they are finished, or failed as stale.
    op.add_column("retrain_runs", sa.Column("options", sa.JSON(), nullable=True))
    op.add_column("retrain_runs", sa.Column("worker", sa.String(128), nullable=True))
    op.add_column(
        "retrain_runs", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "retrain_runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_retrain_runs_status", "retrain_runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_retrain_runs_status", "retrain_runs")
    with op.batch_alter_table("retrain_runs") as batch:  # SQLite cannot drop columns in place
        for column in ("heartbeat_at", "claimed_at", "worker", "options"):
            batch.drop_column(column)
