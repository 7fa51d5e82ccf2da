"""What the console needs to work as a team: who is acting, claims, the review log, and what a
corrected reason brings with it.

`acting` is the one place that says who is acting: every correction, claim and undo the
console stores is made under its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request

from cur_ml.console.session import ConsoleSession
from cur_ml.console.web import Stores, region_model, settings_of
from cur_ml.retrain.approvals import LabelBook
from cur_ml.store.claiming import Claims
from cur_ml.store.corrections import Follow
from cur_ml.store.undo import ReviewLog

__all__ = [
    "Actor",
    "acting",
    "claims",
    "follow_of",
    "mark_holders",
    "parse_version",
    "review_log",
]


@dataclass(frozen=True)
class Actor:
    """The person behind a request: the name corrections are stored under, and the personal
    account (None when signed in with a shared environment token)."""

    name: str
    user_id: int | None = None


def acting(session: ConsoleSession) -> Actor:
    """Who is acting: the signed-in account (its name), or the name typed with a shared token."""
    return Actor(session.name, getattr(session, "user_id", None))


def claims(request: Request, found: Stores) -> Claims:
    return Claims(found.corrections.engine, settings_of(request).claim_minutes)


def review_log(request: Request, found: Stores) -> ReviewLog:
    return ReviewLog(found.corrections.engine, timedelta(minutes=settings_of(request).undo_minutes))


def mark_holders(rows: list[dict], taking: Claims, me: Actor) -> None:
    """Give each queue row (`id`: its prediction) `held_by`: who else holds it now, or ''."""
    held = taking.held([r["id"] for r in rows])
    for row in rows:
        hold = held.get(row["id"])
        row["held_by"] = hold.holder if hold is not None and not hold.is_mine(me.name) else ""


def follow_of(request: Request, region: str) -> Follow | None:
    """The taxonomy of the region's model: the category and urgency a reason brings (None
    while the region has no model loaded)."""
    model: Any = region_model(request, region)
    return LabelBook.of(model).follows if model is not None else None


def parse_version(value: str) -> int | None:
    """A form's `base` field: the version of the labels the page showed (None: not sent)."""
    try:
        version = int(value)
    except (TypeError, ValueError):
        return None
    return version if version >= 0 else None
