"""The `claims` table: who is working on an appeal right now, and until when.

One row per appeal (its `prediction_id`); a claim whose `expires_at` has passed holds
nothing. The table comes with the accounts migration (0005_operators) so that there is one
chain of migrations; the queue's use of it lives beside the review queue.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cur_ml.store.db import Base

__all__ = ["Claim"]

_ID = BigInteger().with_variant(Integer, "sqlite")  # the type of users.id


class Claim(Base):
    """An appeal held by one operator until `expires_at`."""

    __tablename__ = "claims"

    prediction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: The personal account holding it (None: someone signed in with a shared token).
    user_id: Mapped[int | None] = mapped_column(_ID, ForeignKey("users.id"))
    #: The name shown in the queue ("занято: Петрова").
    holder: Mapped[str] = mapped_column(String(128), index=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
