"""label_approvals: labels an admin let in beyond the served model's label sets

Revision ID: 0004_label_approvals
Revises: 0003_retrain_jobs
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_label_approvals"
down_revision: str | None = "0003_retrain_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "label_approvals",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("label", sa.String(512), nullable=False),
        sa.Column("approved_by", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("prediction_id", sa.String(36), nullable=True),
        sa.Column("correction_key", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("field", "label", name="uq_label_approvals_field_label"),
    )
    op.create_index("ix_label_approvals_created_at", "label_approvals", ["created_at"])


def downgrade() -> None:
    op.drop_table("label_approvals")
