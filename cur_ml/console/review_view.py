"""The card's view of review by field: which fields are still open, which followed a corrected
reason, the version the page is based on, and what a conflicting save missed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cur_ml.console.web import HEAD_TITLES, URGENCY_TITLES
from cur_ml.store.correction_record import DERIVED, CorrectionRecord
from cur_ml.store.corrections import Follow
from cur_ml.store.review_progress import Verdict, live_rows, progress_of

__all__ = ["ReviewView", "derived_notice", "review_view"]


@dataclass(frozen=True)
class ReviewView:
    verdict: Verdict
    #: The version of the labels the page shows (its forms send it back as `base`).
    version: int
    #: Heads whose value in force followed a corrected reason.
    derived: frozenset[str]
    #: The rows in force, oldest first.
    live: list[CorrectionRecord]

    @property
    def missing_titles(self) -> str:
        return ", ".join(HEAD_TITLES[h].lower() for h in self.verdict.missing)


def review_view(
    record: Any, history: Sequence[CorrectionRecord], follow: Follow | None
) -> ReviewView:
    live = live_rows(history)
    latest = {r.field: r for r in live}
    return ReviewView(
        verdict=progress_of(record, history, follow),
        version=max((r.id for r in history), default=0),
        derived=frozenset(f for f, r in latest.items() if r.source == DERIVED),
        live=live,
    )


def _shown(field: str, value: str | None) -> str:
    text = value or "—"
    return URGENCY_TITLES.get(text, text) if field == "urgency" else text


def derived_notice(live: Sequence[CorrectionRecord]) -> str:
    """What the latest own reason correction moved with it, in one sentence ('' if nothing)."""
    reasons = [i for i, r in enumerate(live) if r.field == "reason" and r.source != DERIVED]
    if not reasons:
        return ""
    moved = []
    for row in live[reasons[-1] + 1 :]:
        if row.source != DERIVED:
            break
        moved.append(
            f"{HEAD_TITLES[row.field].lower()} «{_shown(row.field, row.old_value)}» → "
            f"«{_shown(row.field, row.new_value)}»"
        )
    return ("По причине изменены: " + "; ".join(moved) + ".") if moved else ""
