"""predictions: every prediction the service answered

Revision ID: 0001_predictions
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_predictions"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("prediction_id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("appeal_id", sa.String(256), nullable=True),
        sa.Column("category", sa.String(512), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("agency", sa.String(512), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("appeal", sa.JSON(), nullable=False),
        sa.Column("prediction", sa.JSON(), nullable=False),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_predictions_model_version", "predictions", ["model_version"])
    op.create_index("ix_predictions_appeal_id", "predictions", ["appeal_id"])
    op.create_index("ix_predictions_needs_review", "predictions", ["needs_review"])


def downgrade() -> None:
    op.drop_table("predictions")
