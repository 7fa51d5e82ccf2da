"""operators as a team: personal accounts, server-side console sessions, claims, failed sign-ins

Revision ID: 0005_operators
Revises: 0004_label_approvals
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_operators"
down_revision: str | None = "0004_label_approvals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_lookup", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(256), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("revoked_at", _WHEN, nullable=True),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sa.UniqueConstraint("token_lookup", name="uq_users_token_lookup"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", _ID, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("env_token", sa.String(64), nullable=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("last_seen_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("ended_at", _WHEN, nullable=True),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_table(
        "claims",
        sa.Column("prediction_id", sa.String(36), primary_key=True),
        sa.Column("user_id", _ID, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("claimed_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
    )
    op.create_index("ix_claims_holder", "claims", ["holder"])
    op.create_index("ix_claims_expires_at", "claims", ["expires_at"])
    op.create_table(
        "auth_failures",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("at", _WHEN, nullable=False),
    )
    op.create_index("ix_auth_failures_key_at", "auth_failures", ["key", "at"])
    op.create_index("ix_auth_failures_at", "auth_failures", ["at"])


def downgrade() -> None:
    op.drop_table("auth_failures")
    op.drop_table("claims")
    op.drop_table("sessions")
    op.drop_table("users")
