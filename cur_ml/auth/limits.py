"""Limits on failed sign-ins and bearer checks, per client address and per account.

At most `limit` failures per key within `window`: the failure that goes over it, and every
attempt under a key that reached it, is refused (429, `Retry-After`) without looking at
the token, until the oldest failures leave the window. Successes are never counted, and
cost a dictionary look-up.

Failures are counted in the store (`FailureLog`), so every worker and replica adds to the
same count: after `limit` failures anywhere, the next wrong token anywhere is refused. The
block itself is also remembered in process, so that a refused key costs no query; a
replica that has not seen the key yet verifies its next attempt (and refuses it if wrong).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from cur_ml.store.auth_failures import FailureLog

__all__ = ["AuthLimiter", "account_key", "address_key"]

log = logging.getLogger(__name__)
#: Blocks remembered in process before expired ones are swept out.
_SWEEP_AT = 10_000


def address_key(address: str | None) -> str:
    return f"addr:{address or '?'}"


def account_key(name: str) -> str:
    """Failures of tokens that begin as this account's token does (someone knows part of it)."""
    return f"user:{name}"


def name_key(name: str) -> str:
    """Failures of sign-ins that typed this name: they block only sign-ins typing it again, so
    typing someone's name cannot lock out their token (which needs no name)."""
    return f"name:{name}"


class AuthLimiter:
    """Count failures, say when a key must wait (`blocked`), and for how long."""

    def __init__(
        self,
        failures: FailureLog | None,
        *,
        limit: int = 5,
        window: timedelta = timedelta(minutes=1),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.failures = failures
        self.limit = limit
        self.window = window
        self._clock = clock  # how long a block lasts here
        self._wall = wall  # when a failure happened (stored, compared across processes)
        self._until: dict[str, float] = {}  # key → monotonic time its block ends
        self._lock = threading.Lock()

    def blocked(self, keys: Iterable[str]) -> int | None:
        """Seconds to wait when any of `keys` reached the limit here, else None."""
        now = self._clock()
        with self._lock:
            waits = [self._until[k] - now for k in keys if self._until.get(k, 0.0) > now]
        return math.ceil(max(waits)) if waits else None

    def failed(self, keys: Iterable[str]) -> int | None:
        """Count one failure under each key; the seconds to wait when this one went over
        the limit (answer 429), else None (answer as a failure always is)."""
        keys = list(dict.fromkeys(keys))
        if self.failures is None or not keys:
            return None
        now = self._wall()
        try:
            recent = self.failures.record(keys, now)
        except SQLAlchemyError:  # the store is down: the failure is answered, not counted
            log.warning("a failed sign-in could not be counted: the store is unavailable")
            return None
        over = None
        for key, times in recent.items():
            if len(times) < self.limit:
                continue
            # Free again once enough of the oldest failures left the window.
            free_at = times[len(times) - self.limit] + self.window
            wait = max(1, math.ceil((free_at - now).total_seconds()))
            self._block(key, wait)
            if len(times) > self.limit:
                over = max(over or 0, wait)
        return over

    def _block(self, key: str, seconds: int) -> None:
        until = self._clock() + seconds
        with self._lock:
            self._until[key] = max(until, self._until.get(key, 0.0))
            if len(self._until) > _SWEEP_AT:
                now = self._clock()
                self._until = {k: t for k, t in self._until.items() if t > now}
