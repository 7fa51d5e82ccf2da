"""The lane of large predict requests: one at a time, in chunks, behind the small requests.

A request of many characters costs a long `model.predict`. Run in a request thread like the
others, it holds the GIL that single-appeal requests need, and they wait for seconds. Requests
above a character budget therefore go through this lane instead:

- at most one is predicted at a time; a few more wait, the rest are refused at once
  (`PredictorBusyError`, 503 with Retry-After): waiting requests hold threads of the server's
  pool, which small requests need too;
- it is predicted in chunks of at most `chunk_chars` characters (at least one appeal each), all
  with the model read when the request started (one model per answer, also across a swap);
- each chunk is predicted in a child process at lower CPU priority (`ProcessRunner`) when it
  can be, so the serving process keeps its GIL; otherwise in the request's thread, and then
  the lane waits before every chunk until no small request is predicting (at most
  `max_yield` seconds, so a stream of small requests never starves it).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cur_ml.api.lane_process import ProcessRunner
from cur_ml.errors import PredictorBusyError
from cur_ml.model.bundle import RoutingModel

__all__ = ["LargeLane", "chunks", "request_chars"]

Records = list[dict[str, Any]]


def request_chars(records: Records) -> int:
    """Characters of text in a request: what its prediction costs, near enough."""
    return sum(len(r.get("text") or "") for r in records)


def chunks(records: Records, max_chars: int) -> Iterator[Records]:
    """Consecutive slices of at most `max_chars` characters of text (one appeal at least)."""
    start, size = 0, 0
    for i, record in enumerate(records):
        n = len(record.get("text") or "")
        if i > start and size + n > max_chars:
            yield records[start:i]
            start, size = i, 0
        size += n
    if start < len(records):
        yield records[start:]


class LargeLane:
    """Predicts requests of more than `min_chars` characters, one at a time, in chunks.

    Parameters
    ----------
    current_model : the model to answer with (read once per request).
    min_chars : requests with more characters of text than this take this lane.
    chunk_chars : most characters of text per `model.predict` call.
    max_waiting : large requests that may wait while one is predicted (more: busy).
    runner : the child process to predict in; None: always in the request's thread.
    directory : where the served model's files are (the child loads them from there).
    max_yield : longest wait for small requests before a chunk predicted in-thread.
    on_request : called with how each request was served: `process`, `thread` or `busy`.
    """

    def __init__(
        self,
        current_model: Callable[[], RoutingModel],
        *,
        min_chars: int = 4_000,
        chunk_chars: int = 10_000,
        max_waiting: int = 8,
        runner: ProcessRunner | None = None,
        directory: Callable[[], Path] | None = None,
        max_yield: float = 0.2,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self.current_model = current_model
        self.min_chars = min_chars
        self.chunk_chars = chunk_chars
        self.max_waiting = max_waiting
        self.runner = runner
        self.directory = directory
        self.max_yield = max_yield
        self.on_request = on_request
        self._cond = threading.Condition()
        self._busy = False  # a large request is being predicted
        self._waiting = 0
        self._waiting_chars = 0
        self._chars_per_s = 0.0  # of the requests predicted so far (moving average)
        self._small = 0  # small requests predicting now
        self._small_idle = threading.Condition()
        self._closed = False

    # ---------------------------------------------------------------- routing
    def takes(self, records: Records) -> bool:
        return request_chars(records) > self.min_chars

    @contextmanager
    def small_request(self) -> Iterator[None]:
        """Marks a small request's prediction: in-thread chunks wait until none is running."""
        with self._small_idle:
            self._small += 1
        try:
            yield
        finally:
            with self._small_idle:
                self._small -= 1
                if not self._small:
                    self._small_idle.notify_all()

    # ---------------------------------------------------------------- predict
    def predict(self, records: Records, explain: bool) -> tuple[Records, RoutingModel]:
        """Predictions for `records` and the model that made them (blocks until done)."""
        chars = request_chars(records)
        self._admit(chars)
        started = time.perf_counter()
        try:
            model = self.current_model()
            out: Records = []
            where = "process"
            for part in chunks(records, self.chunk_chars):
                done = self._in_process(model, part, explain) if where == "process" else None
                if done is None:
                    where = "thread"
                    self._yield_to_small()
                    done = model.predict(part, explain=explain)
                out.extend(done)
            if self.on_request is not None:
                self.on_request(where)
            return out, model
        finally:
            self._release(chars, time.perf_counter() - started)

    def close(self) -> None:
        """Refuse new requests and stop the child process (the one predicting finishes)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self.runner is not None:
            self.runner.close()

    # -------------------------------------------------------------- internals
    def _admit(self, chars: int) -> None:
        """Wait for the lane, or refuse when too many requests wait already."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the predictor is stopped")
            if self._busy and self._waiting >= self.max_waiting:
                if self.on_request is not None:
                    self.on_request("busy")
                raise PredictorBusyError(
                    f"{self._waiting} large requests are waiting already: retry later or send "
                    f"requests of at most {self.min_chars} characters",
                    retry_after=self._retry_after(),
                )
            self._waiting += 1
            self._waiting_chars += chars
            try:
                self._cond.wait_for(lambda: not self._busy or self._closed)
            finally:
                self._waiting -= 1
                self._waiting_chars -= chars
            if self._closed:
                raise RuntimeError("the predictor is stopped")
            self._busy = True

    def _release(self, chars: int, seconds: float) -> None:
        with self._cond:
            self._busy = False
            rate = chars / max(seconds, 1e-3)
            old = self._chars_per_s
            self._chars_per_s = 0.8 * old + 0.2 * rate if old else rate
            self._cond.notify()

    def _retry_after(self) -> int:
        """Seconds until the requests waiting now are likely done (1 at least)."""
        if not self._chars_per_s:
            return 1
        return max(1, math.ceil(self._waiting_chars / self._chars_per_s))

    def _in_process(self, model: RoutingModel, part: Records, explain: bool) -> Records | None:
        if self.runner is None or self.directory is None:
            return None
        return self.runner.predict(self.directory(), model, part, explain)

    def _yield_to_small(self) -> None:
        """Let the small requests predicting now finish first (they share this GIL)."""
        with self._small_idle:
            self._small_idle.wait_for(lambda: not self._small, self.max_yield)
