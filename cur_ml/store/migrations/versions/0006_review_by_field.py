"""review by field: review_progress, where the review of each prediction stands

Revision ID: 0006_review_by_field
Revises: 0005_operators
Create Date: 2026-12-02

Appeals that a correction took out of the queue before this revision (any field closed the
whole appeal) stay out: they get a `done` row with no field list. The next correction of
such an appeal judges it by field.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006_review_by_field"
down_revision: str | None = "0005_operators"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_progress",
        sa.Column("prediction_id", sa.String(36), primary_key=True),
        sa.Column("needed", sa.String(64), nullable=False),
        sa.Column("settled", sa.String(64), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_progress_done", "review_progress", ["done"])
    op.execute(
        sa.text(
            "INSERT INTO review_progress (prediction_id, needed, settled, done, updated_at) "
            "SELECT p.prediction_id, '', '', :done, :now FROM predictions p "
            "WHERE EXISTS (SELECT 1 FROM corrections c WHERE c.prediction_id = p.prediction_id)"
        ).bindparams(
            sa.bindparam("done", True, type_=sa.Boolean()),
            sa.bindparam("now", datetime.now(UTC), type_=sa.DateTime(timezone=True)),
        )
    )


def downgrade() -> None:
    op.drop_table("review_progress")
