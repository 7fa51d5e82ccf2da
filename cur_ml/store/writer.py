"""Recording predictions: a bounded queue drained in batches by one thread (group commit).

A request hands its rows over and waits for their commit (`submit` then `wait`)
before it answers, so a 2xx answer means every `prediction_id` in it is stored,
also if the process is killed right after. Rows of requests that arrive while a
transaction is being written are written together in the next one: one commit
serves many requests, and throughput holds. The queue is bounded (requests wait,
then fail with `StoreBusyError`, when the store cannot keep up) and `close`
drains it. A store that is down fails the waiting requests with `StoreUnavailableError`
after a short retry (`retry_seconds`), and tells `StoreHealth`, so that the service stops
promising answers it cannot keep until the store is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from cur_ml.errors import StoreBusyError, StoreUnavailableError
from cur_ml.store.db import commit_kept
from cur_ml.store.health import StoreHealth, unavailable_error
from cur_ml.store.predictions import PredictionRepository

__all__ = ["PredictionWriter", "StoreBusyError", "StoreUnavailableError"]

log = logging.getLogger(__name__)


class PredictionWriter:
    """Background batch writer of `predictions` rows.

    Parameters
    ----------
    repository : where rows go.
    max_pending : rows queued or being written before `submit` waits.
    batch_rows : most rows in one insert.
    submit_timeout : seconds `submit` waits for room before raising `StoreBusyError`.
    linger : seconds the writer waits after the first row for more to arrive (0: write
        at once; requests arriving meanwhile share the next commit anyway).
    health : told of every write that failed because the store is down, and of every
        commit (default: a `StoreHealth` of the repository's engine).
    retry_seconds : how long a batch is retried while the store is down before its requests
        fail with `StoreUnavailableError` (a stale connection needs one retry).
    """

    def __init__(
        self,
        repository: PredictionRepository,
        *,
        max_pending: int = 10_000,
        batch_rows: int = 2_000,
        submit_timeout: float = 10.0,
        linger: float = 0.0,
        health: StoreHealth | None = None,
        retry_seconds: float = 1.0,
    ) -> None:
        self.repository = repository
        self.max_pending = max_pending
        self.batch_rows = batch_rows
        self.submit_timeout = submit_timeout
        self.linger = linger
        self.health = health if health is not None else StoreHealth(repository.engine)
        self.retry_seconds = retry_seconds
        self.pending = 0  # rows submitted and not yet committed
        self.written = 0
        self.failures = 0
        self._items: deque[tuple[int, list[dict[str, Any]]]] = deque()
        self._submitted = 0  # tickets handed out
        self._committed = 0  # every ticket up to this one is done (written or failed)
        # Tickets with a row that could not be written -> whether the store was down.
        self._failed: dict[int, bool] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> PredictionWriter:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="cur-ml-prediction-writer", daemon=True
            )
            self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, rows: Sequence[dict[str, Any]]) -> int:
        """Queue rows for writing (waits while the queue is full); returns their ticket."""
        if not rows:
            return 0
        n = len(rows)
        deadline = time.monotonic() + self.submit_timeout
        with self._cond:
            if self._closing or not self.alive:
                raise StoreBusyError("the prediction store is closed")
            # A batch larger than the whole queue is let in when the queue is empty.
            while self.pending and self.pending + n > self.max_pending:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    raise StoreBusyError(
                        f"the prediction store is not keeping up ({self.pending} rows waiting)"
                    )
            self._submitted += 1
            self._items.append((self._submitted, list(rows)))
            self.pending += n
            self._cond.notify_all()
            return self._submitted

    def wait(self, ticket: int, timeout: float | None = None) -> None:
        """Return once the rows of `ticket` are committed; else (the caller must then not
        acknowledge them) `StoreUnavailableError` if the store is down, `StoreBusyError` if
        a row could not be written or the commit took more than `timeout` seconds."""
        if ticket <= 0:
            return
        timeout = self.submit_timeout if timeout is None else timeout
        with self._cond:
            if not self._cond.wait_for(lambda: self._committed >= ticket, timeout):
                if not self.health.available:
                    raise StoreUnavailableError("the prediction store is unavailable; retry later")
                raise StoreBusyError("the prediction store did not confirm the write in time")
            if ticket in self._failed:
                if self._failed.pop(ticket):
                    raise StoreUnavailableError(
                        "the prediction store is unavailable: this answer was not recorded"
                    )
                raise StoreBusyError("the prediction store could not record this answer")

    def record(self, rows: Sequence[dict[str, Any]], timeout: float | None = None) -> None:
        """Write rows and wait for their commit (`submit` + `wait`)."""
        self.wait(self.submit(rows), timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row submitted so far is committed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.pending == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread (a clean shutdown loses nothing)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction writer did not finish: %d rows not written", self.pending)

    def _take(self) -> list[tuple[int, list[dict[str, Any]]]] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closing)
            if not self._items:
                return None
            if self.linger > 0 and not self._closing:
                rows = sum(len(item) for _, item in self._items)
                deadline = time.monotonic() + self.linger
                while rows < self.batch_rows and not self._closing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                    rows = sum(len(item) for _, item in self._items)
            # Whole requests only: a request's rows are committed together.
            taken = [self._items.popleft()]
            size = len(taken[0][1])
            while self._items and size + len(self._items[0][1]) <= self.batch_rows:
                taken.append(self._items.popleft())
                size += len(taken[-1][1])
            return taken

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            batch = [row for _, rows in taken for row in rows]
            failed, down = self._write(batch)
            with self._cond:
                self.pending -= len(batch)
                self.written += len(batch) - len(failed)
                for t, rows in taken:
                    if any(id(r) in failed for r in rows):
                        self._failed[t] = down
                self._committed = taken[-1][0]
                self._cond.notify_all()

    def _write(self, batch: list[dict[str, Any]]) -> tuple[set[int], bool]:
        """Insert a batch; return the `id()` of the rows that could not be written, and
        whether that was because the store is down (then it is all of them).

        A store that is down is retried for `retry_seconds`, then the batch fails and
        `health` hears of it; a commit whose SQLite file left its path meanwhile is not
        retried (its rows may sit in the old file) and fails too. Any other failure is
        retried row by row, so one bad row cannot hold the others back.
        """
        delay = 0.05
        # Known to be down: one attempt, so a queue built up meanwhile fails fast.
        deadline = time.monotonic() + (self.retry_seconds if self.health.available else 0.0)
        while True:
            try:
                self.repository.add_many(batch)
            except Exception as exc:
                self.failures += 1
                if not unavailable_error(exc):
                    log.exception(
                        "writing %d predictions failed; writing them one by one", len(batch)
                    )
                    break
                if time.monotonic() + delay > deadline:
                    self.health.failed(exc)
                    log.error(
                        "the prediction store is unavailable: %d rows not written", len(batch)
                    )
                    return {id(row) for row in batch}, True
                log.warning("the prediction store is unavailable; retrying %d rows", len(batch))
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if not commit_kept(self.repository.engine):
                self.failures += 1
                self.health.failed("the database file left its path during a commit")
                return {id(row) for row in batch}, True
            self.health.wrote()
            return set(), False
        failed = set()
        for row in batch:
            try:
                self.repository.add_many([row])
                if not commit_kept(self.repository.engine):
                    raise StoreUnavailableError("the database file left its path during a commit")
            except Exception:
                failed.add(id(row))
                log.exception("prediction %s could not be recorded", row.get("prediction_id"))
        return failed, False
