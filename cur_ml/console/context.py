"""Where in the queue an operator is: its filters, page and position, carried from page to page.

Filters come from the query string and are echoed into links and hidden form fields,
so "next appeal" after a correction stays within the queue the operator was working on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qsl, urlencode

from cur_ml.auth import RegionAccess
from cur_ml.console.web import MSK
from cur_ml.store.review import ReviewFilters

__all__ = ["QueueContext"]

_TEXT = ("district", "category", "agency", "source", "reason", "review", "q", "region")
_LIMIT = 512
_URGENCIES = ("high", "medium", "low")
_RU_DAY = re.compile(r"\d{1,2}\.\d{1,2}\.\d{4}")


def _int(value: str | None, default: int, low: int) -> int:
    try:
        return max(low, int(value or default))
    except ValueError:
        return default


def _day(value: str, errors: list[str]) -> str:
    """A day as ISO text, from 'дд.мм.гггг' (as typed) or 'гггг-мм-дд'."""
    if not value:
        return ""
    try:
        if _RU_DAY.fullmatch(value):
            return datetime.strptime(value, "%d.%m.%Y").date().isoformat()
        return date.fromisoformat(value).isoformat()
    except ValueError:
        errors.append(f"Дата «{value[:20]}» не распознана (нужен вид дд.мм.гггг); фильтр снят.")
        return ""


def _ru(day: str) -> str:
    return date.fromisoformat(day).strftime("%d.%m.%Y") if day else ""


def _msk_midnight(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(), MSK).astimezone(UTC)


@dataclass(frozen=True)
class QueueContext:
    """Queue filters (empty = any), the page shown, and an appeal's position in the order."""

    district: str = ""
    category: str = ""
    agency: str = ""
    source: str = ""
    reason: str = ""
    #: Why-flagged: a kind of review reason (`low_confidence`, `place_unknown`...).
    review: str = ""
    #: Words to find in the appeal's text.
    q: str = ""
    #: One of the person's regions (empty: all of them).
    region: str = ""
    urgency: str = ""
    since: str = ""
    until: str = ""
    page: int = 1
    pos: int = 0
    errors: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> QueueContext:
        """Read from query parameters; anything malformed is dropped, not an error page."""
        errors: list[str] = []
        text = {k: str(params.get(k) or "").strip()[:_LIMIT] for k in _TEXT}
        urgency = str(params.get("urgency") or "").strip()
        return cls(
            **text,
            urgency=urgency if urgency in _URGENCIES else "",
            since=_day(str(params.get("since") or "").strip(), errors),
            until=_day(str(params.get("until") or "").strip(), errors),
            page=_int(params.get("page"), 1, 1),
            pos=_int(params.get("pos"), 0, 0),
            errors=tuple(errors),
        )

    @classmethod
    def from_string(cls, query: str) -> QueueContext:
        return cls.from_params(dict(parse_qsl(query or "", keep_blank_values=False)))

    @property
    def since_text(self) -> str:
        return _ru(self.since)

    @property
    def until_text(self) -> str:
        return _ru(self.until)

    @property
    def active(self) -> bool:
        return any(getattr(self, k) for k in (*_TEXT, "urgency", "since", "until"))

    def filters(self, access: RegionAccess | None = None) -> ReviewFilters:
        """The store's filters; dates are days in Moscow time, `until` inclusive. With
        `access`, only the person's regions (the chosen one when it is theirs)."""
        until = _msk_midnight(self.until) + timedelta(days=1) if self.until else None
        regions = None
        if access is not None:
            regions = access.scope(self.region if self.region in access.regions else None)
        return ReviewFilters(
            **{k: getattr(self, k) or None for k in ("district", "category", "agency", "source")},
            reason=self.reason or None,
            urgency=self.urgency or None,
            review_reason=self.review or None,
            search=self.q or None,
            since=_msk_midnight(self.since) if self.since else None,
            until=until,
            regions=regions,
            default_region=access.default if access is not None else None,
        )

    def with_(self, **changes: object) -> QueueContext:
        return replace(self, **changes)  # type: ignore[arg-type]

    def query(self, *, page: bool = True, pos: bool = True) -> str:
        """The context as a query string (empty values and defaults left out)."""
        values = {k: v for k, v in asdict(self).items() if k != "errors"}
        if not page or self.page == 1:
            values.pop("page")
        if not pos or self.pos == 0:
            values.pop("pos")
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})
