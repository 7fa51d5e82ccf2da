"""Coalescing of concurrent predict requests into one `model.predict` call.

A single appeal costs a fixed overhead (frame, vectorisers, scoring) that a batch
pays once, so under load one `predict` call for whatever has queued up answers
many more appeals per second than one call per request (calls that would also
fight over the GIL). Leader/followers: a request arriving while nothing is being
predicted predicts at once in its own thread (no hand-off, no wait); requests
arriving meanwhile queue up and the next one in line leads the following batch.

Requests of many characters are not merged: they go to the large lane (`lanes.LargeLane`),
which predicts them one at a time, in chunks, without holding up the small ones.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from cur_ml.api.lanes import LargeLane
from cur_ml.model.bundle import RoutingModel

__all__ = ["DirectPredictor", "PredictBatcher"]

Records = list[dict[str, Any]]


class _Job:
    __slots__ = ("done", "error", "event", "explain", "lead", "model", "records", "result")

    def __init__(self, records: Records, explain: bool) -> None:
        self.records, self.explain = records, explain
        self.event = threading.Event()
        self.lead = self.done = False
        self.result: Records | None = None
        self.model: RoutingModel | None = None
        self.error: BaseException | None = None

    def outcome(self) -> tuple[Records, RoutingModel]:
        if self.error is not None:
            raise self.error
        assert self.result is not None and self.model is not None
        return self.result, self.model


class PredictBatcher:
    """Merges requests that arrive while a prediction runs.

    Parameters
    ----------
    current_model : returns the model to predict with (read once per batch, so one
        request is always answered by a single model, even across a hot swap).
    max_appeals : most appeals merged into one `predict` call.
    on_batch : called with (requests, appeals) of each `predict` call (metrics).
    large : the lane of requests above its character budget (None: every request merges).
    """

    def __init__(
        self,
        current_model: Callable[[], RoutingModel],
        max_appeals: int = 1_000,
        on_batch: Callable[[int, int], None] | None = None,
        large: LargeLane | None = None,
    ) -> None:
        self.current_model = current_model
        self.max_appeals = max_appeals
        self.on_batch = on_batch
        self.large = large
        self._queue: deque[_Job] = deque()
        self._lock = threading.Lock()
        self._running = False
        self._closed = False

    def start(self) -> PredictBatcher:
        return self

    def close(self, timeout: float = 0.0) -> None:
        """Refuse new requests (those in flight finish in their own threads)."""
        with self._lock:
            self._closed = True
        if self.large is not None:
            self.large.close()

    def predict(self, records: Records, explain: bool) -> tuple[Records, RoutingModel]:
        """Predictions for `records` and the model that made them (blocks until done)."""
        large = self.large
        if large is None:
            return self._merged(records, explain)
        if large.takes(records):
            return large.predict(records, explain)
        with large.small_request():
            return self._merged(records, explain)

    def _merged(self, records: Records, explain: bool) -> tuple[Records, RoutingModel]:
        job = _Job(records, explain)
        with self._lock:
            if self._closed:
                raise RuntimeError("the predictor is stopped")
            self._queue.append(job)
            lead = not self._running
            self._running = True
        if not lead:
            job.event.wait()
            if not job.lead:
                return job.outcome()
        self._lead(job)
        return job.outcome()

    def _lead(self, own: _Job) -> None:
        """Predict batches until `own` is answered, then pass the lead on (or stand down)."""
        try:
            while not own.done:
                with self._lock:
                    batch = self._take()
                try:
                    self._predict(batch)
                finally:
                    for job in batch:
                        job.done = True
                        if job.result is None and job.error is None:
                            job.error = RuntimeError("prediction interrupted")
                        if job is not own:
                            job.event.set()
        finally:  # whatever happened, the queue gets a leader or the lead is free again
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.event.set()
                else:
                    self._running = False

    def _take(self) -> list[_Job]:
        """The head of the queue and the queued jobs with its explain flag, up to the limit."""
        head = self._queue.popleft()
        batch, size, keep = [head], len(head.records), deque()
        while self._queue:
            job = self._queue.popleft()
            if job.explain is head.explain and size + len(job.records) <= self.max_appeals:
                batch.append(job)
                size += len(job.records)
            else:
                keep.append(job)
        self._queue.extendleft(reversed(keep))
        return batch

    def _predict(self, jobs: list[_Job]) -> None:
        try:
            model = self.current_model()
            merged = [r for j in jobs for r in j.records]
            if self.on_batch is not None:
                self.on_batch(len(jobs), len(merged))
            out = model.predict(merged, explain=jobs[0].explain)
        except Exception as exc:
            if len(jobs) > 1:  # find the request that fails; the others get their answers
                for job in jobs:
                    self._predict([job])
                return
            jobs[0].error = exc
            return
        start = 0
        for job in jobs:
            end = start + len(job.records)
            job.result, job.model = out[start:end], model
            start = end


class DirectPredictor:
    """No coalescing: each request predicts in its own thread (CUR_ML_COALESCE_PREDICTIONS=0);
    large requests still go to the large lane when one is given."""

    def __init__(
        self, current_model: Callable[[], RoutingModel], large: LargeLane | None = None
    ) -> None:
        self.current_model = current_model
        self.large = large

    def start(self) -> DirectPredictor:
        return self

    def predict(self, records: Records, explain: bool) -> tuple[Records, RoutingModel]:
        large = self.large
        if large is not None and large.takes(records):
            return large.predict(records, explain)
        with large.small_request() if large is not None else nullcontext():
            model = self.current_model()
            return model.predict(records, explain=explain), model

    def close(self, timeout: float = 0.0) -> None:
        if self.large is not None:
            self.large.close()
