"""How much each operator did per day: corrections (one per field), not appeals.

Counted are the operators' own rows (API, console, admin): rows that followed a corrected
reason, undo rows and imported history are not someone's work of that day. Days are
Moscow days, as the console shows times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Integer, case, cast, func, select
from sqlalchemy.orm import Session

from cur_ml.store.correction_record import DERIVED, UNDO, CorrectionRecord
from cur_ml.store.regions import region_in

__all__ = ["OperatorDay", "daily_counts"]

_NOT_WORK = (DERIVED, UNDO, "import")
_MSK = timedelta(hours=3)


@dataclass(frozen=True)
class OperatorDay:
    """One operator's corrections on one day: values changed and values accepted as they were."""

    day: date
    operator: str
    changed: int
    accepted: int

    @property
    def total(self) -> int:
        return self.changed + self.accepted


def _day(engine: Engine) -> Any:
    """The Moscow day of a correction, as SQL for the engine's dialect."""
    if engine.dialect.name == "postgresql":
        return func.date(func.timezone("Europe/Moscow", CorrectionRecord.created_at))
    return func.date(CorrectionRecord.created_at, "+3 hours")


def daily_counts(
    engine: Engine,
    days: int = 7,
    now: datetime | None = None,
    regions: Sequence[str] | None = None,
    default_region: str | None = None,
) -> list[OperatorDay]:
    """Per operator and Moscow day, the last `days` days (today included), newest day first,
    then the busiest operator first; corrections of `regions` only when given (rows without
    a region are `default_region`'s)."""
    now = now or datetime.now(UTC)
    first = (now + _MSK).date() - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC) - _MSK
    day = _day(engine).label("day")
    same = func.coalesce(CorrectionRecord.old_value, "") == CorrectionRecord.new_value
    q = (
        select(
            day,
            CorrectionRecord.operator,
            func.sum(cast(case((same, 0), else_=1), Integer)),
            func.sum(cast(case((same, 1), else_=0), Integer)),
        )
        .where(
            CorrectionRecord.created_at >= since,
            CorrectionRecord.source.not_in(_NOT_WORK),
            region_in(CorrectionRecord.region, regions, default_region),
        )
        .group_by(day, CorrectionRecord.operator)
    )
    with Session(engine) as session:
        rows = [
            OperatorDay(
                d if isinstance(d, date) else date.fromisoformat(str(d)), op, int(c), int(a)
            )
            for d, op, c, a in session.execute(q)
        ]
    return sorted(rows, key=lambda r: (-r.day.toordinal(), -r.total, r.operator))
