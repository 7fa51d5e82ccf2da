"""Region filters of the store: rows written before regions (region NULL) belong to the
deployment's default region."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, true

__all__ = ["region_in", "region_is"]


def region_is(column: Any, region: str | None, default: str | None = None) -> Any:
    """Rows of `region` (None: every region); NULL rows count as `default`'s."""
    if region is None:
        return true()
    if region == default:
        return or_(column == region, column.is_(None))
    return column == region


def region_in(column: Any, regions: Iterable[str] | None, default: str | None = None) -> Any:
    """Rows of any of `regions` (None: every region); NULL rows count as `default`'s."""
    if regions is None:
        return true()
    codes = sorted(set(regions))
    condition = column.in_(codes)
    return or_(condition, column.is_(None)) if default in codes else condition
