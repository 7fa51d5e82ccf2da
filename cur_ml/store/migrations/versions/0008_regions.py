"""regions (tenants): the region of every prediction, correction and retrain job; the regions
of every account

Rows written before regions keep NULL, which reads as the deployment's default region.

Revision ID: 0008_regions
Revises: 0007_queue_search
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_regions"
down_revision: str | None = "0007_queue_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("predictions", "corrections", "retrain_runs")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("region", sa.String(16), nullable=True))
        op.create_index(f"ix_{table}_region", table, ["region"])
    # Comma-separated codes an account works in (NULL: the default region only).
    op.add_column("users", sa.Column("regions", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:  # SQLite cannot drop columns in place
        batch.drop_column("regions")
    for table in _TABLES:
        op.drop_index(f"ix_{table}_region", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("region")
