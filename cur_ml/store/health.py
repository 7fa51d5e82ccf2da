"""Whether the store can take writes now: what the writer last saw, or a cheap probe.

`/readyz` and `POST /v1/predict` ask before they promise anything. A SQLite file that was
deleted or moved away, a PostgreSQL server that does not answer (or is a read-only standby),
or a write that failed for such a reason make the store unavailable; it is available again as
soon as the file is back or the server answers. A verdict is reused for `ttl` seconds, so a
load balancer polling `/readyz` costs a `stat`, not a query.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from cur_ml.errors import StoreUnavailableError
from cur_ml.store.db import sqlite_file_problem, sqlite_path

__all__ = ["StoreHealth", "StoreUnavailableError", "unavailable_error"]

log = logging.getLogger(__name__)


def unavailable_error(exc: BaseException) -> bool:
    """An error that says the store is down (not that a row is bad): retry later, elsewhere.

    A plain `DatabaseError` (none of its subclasses: those name a bad row or statement) is
    what SQLite says of a file that is corrupt or not a database at all.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if type(exc) is DatabaseError:
        return True
    return isinstance(
        exc, OperationalError | InterfaceError | PoolTimeoutError | StoreUnavailableError
    )


def _first_line(exc: BaseException) -> str:
    """The driver's message without the statement and parameters SQLAlchemy appends."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


class StoreHealth:
    """Availability of the store behind `engine` for writes.

    Parameters
    ----------
    engine : the store's engine (the one the writer and the repositories use).
    ttl : seconds a verdict (of a probe or of a write) is reused before the next probe.
    """

    def __init__(self, engine: Engine, *, ttl: float = 1.0) -> None:
        self.engine = engine
        self.ttl = ttl
        #: Why the store is unavailable (for logs and operators: it may name the file).
        self.reason: str | None = None
        self._path = sqlite_path(engine.url)
        self._ok = True
        self._at = -math.inf  # monotonic time of the verdict
        self._probing = threading.Lock()
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """The last verdict, without any I/O."""
        return self._ok

    @property
    def fresh(self) -> bool:
        """True while `check` answers without I/O."""
        return time.monotonic() - self._at < self.ttl

    def check(self) -> bool:
        """Whether the store can take writes: the verdict while it is fresh, else a probe.

        Never waits behind another thread's probe: meanwhile the last verdict stands.
        """
        if self.fresh or not self._probing.acquire(blocking=False):
            return self._ok
        try:
            if not self.fresh:
                self._set(self._probe())
        finally:
            self._probing.release()
        return self._ok

    def require(self) -> None:
        """`StoreUnavailableError` unless `check` says the store can take writes."""
        if not self.check():
            raise StoreUnavailableError("the store cannot record predictions now; retry later")

    def wrote(self) -> None:
        """A write was committed (and kept): the store is available."""
        self._set(None)

    def failed(self, reason: str | BaseException) -> None:
        """A write failed because the store is down: unavailable until the next probe."""
        self._set(reason if isinstance(reason, str) else _first_line(reason))

    def _set(self, reason: str | None) -> None:
        with self._lock:
            was = self._ok
            self._ok, self.reason, self._at = reason is None, reason, time.monotonic()
        if was and reason is not None:
            log.error("the store is unavailable: %s", reason)
        elif not was and reason is None:
            log.warning("the store is available again")

    def _probe(self) -> str | None:
        """Why the store cannot take writes now (None: it can). SQLite: the file is at its
        path and writable (connections to a file that left it are dropped at checkout),
        then its header is read (a corrupt file or one that is not a database fails here,
        where `SELECT 1` would not read the file at all); a server: one query
        (`pool_pre_ping` replaces dead connections)."""
        if self._path is not None and (problem := sqlite_file_problem(self._path)):
            return problem
        try:
            with self.engine.connect() as conn:
                if self.engine.dialect.name == "postgresql":
                    if conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                        return "the database server is a read-only standby"
                else:
                    conn.execute(text("PRAGMA schema_version"))
        except Exception as exc:  # whatever the driver says, the store is not usable
            return _first_line(exc)
        return None
