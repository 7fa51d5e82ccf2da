"""«Ответить до»: an appeal's deadline as the queue shows it, with the time left or overdue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["Deadline", "deadline", "time_left"]

#: As `web.MSK` (kept here so that this module needs nothing of the web layer).
_MSK = timezone(timedelta(hours=3), "МСК")


@dataclass(frozen=True)
class Deadline:
    """When the answer is due (UTC), how it reads, and whether it has passed."""

    at: datetime
    text: str
    left: str
    overdue: bool

    @property
    def iso(self) -> str:
        """For `<time datetime>` (console.js keeps the countdown running from it)."""
        return self.at.isoformat(timespec="seconds")


def time_left(delta: timedelta) -> str:
    """«осталось 2 дн 4 ч» / «просрочено на 35 мин»: the two largest units, rounded down."""
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        amount = f"{days} дн {hours} ч" if hours else f"{days} дн"
    elif hours:
        amount = f"{hours} ч {minutes} мин" if minutes else f"{hours} ч"
    else:
        amount = f"{minutes} мин"
    return f"просрочено на {amount}" if delta < timedelta(0) else f"осталось {amount}"


def deadline(due_at: datetime | None, now: datetime | None = None) -> Deadline | None:
    """The deadline of a stored `due_at` (UTC; naive = UTC as SQLite gives it back)."""
    if due_at is None:
        return None
    at = due_at if due_at.tzinfo is not None else due_at.replace(tzinfo=UTC)
    delta = at - (now or datetime.now(UTC))
    return Deadline(
        at=at.astimezone(UTC),
        text=at.astimezone(_MSK).strftime("%d.%m.%Y %H:%M"),
        left=time_left(delta),
        overdue=delta < timedelta(0),
    )
