"""Prometheus metrics of one app (its own registry, so several apps can live in one process).

With several worker processes (`cur-ml serve --workers N`) prometheus-client runs in its
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `serve`): every worker writes its values
to files there, and `/metrics`, whichever worker answers, reads all of them: counters and
histograms are summed, each gauge is combined as its `multiprocess_mode` says.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from cur_ml.model.classifier import HEADS

__all__ = ["ApiMetrics"]

_LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def _multiprocess() -> bool:
    """Whether prometheus-client writes to PROMETHEUS_MULTIPROC_DIR (chosen at its import)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class ApiMetrics:
    """Request counts and latencies per route, predictions per label, review rate, model version."""

    def __init__(self, review_window: int = 1_000) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = _multiprocess()
        # What /metrics shows: this registry, or every worker's files.
        self._exposed = registry
        if self.multiprocess:
            self._exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._exposed)
        self._watched: list[tuple[Gauge, Callable[[], float]]] = []
        self._refreshed = 0.0
        self.requests = Counter(
            "cur_ml_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "cur_ml_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer, by route template.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.predictions = Counter(
            "cur_ml_predictions",
            "Appeals predicted, by head and predicted label.",
            ["head", "label"],
            registry=registry,
        )
        self.appeals = Counter("cur_ml_appeals", "Appeals predicted.", registry=registry)
        self.needs_review = Counter(
            "cur_ml_needs_review", "Appeals predicted with needs_review = true.", registry=registry
        )
        self.review_reasons = Counter(
            "cur_ml_review_reasons",
            "Review reasons given, by reason (low_confidence:reason, not_russian, ...).",
            ["reason"],
            registry=registry,
        )
        self.review_rate = Gauge(
            "cur_ml_needs_review_ratio",
            f"Share of needs_review among the last {review_window} appeals predicted "
            "(by the worker that predicted last).",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.worker_appeals = Gauge(
            "cur_ml_worker_appeals",
            "Appeals predicted by this worker process since it started (with several workers: "
            "one series per live worker, labelled by pid).",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.batch_size = Histogram(
            "cur_ml_predict_batch_appeals",
            "Appeals per POST /v1/predict.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
            registry=registry,
        )
        self.merged_requests = Histogram(
            "cur_ml_predict_merged_requests",
            "Requests answered by one model.predict call (coalesced while a prediction ran).",
            buckets=(1, 2, 3, 5, 8, 13, 21, 34, 55, 89),
            registry=registry,
        )
        self.model_info = Gauge(
            "cur_ml_model_info",
            "The model being served (value 1, its version as a label; with several workers, "
            "1 for every version some live worker serves).",
            ["version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.model_loads = Counter(
            "cur_ml_model_loads",
            "Model loads (the first one and every reload), by outcome (ok, failed).",
            ["outcome"],
            registry=registry,
        )
        self.large_requests = Counter(
            "cur_ml_large_requests",
            "Predict requests of the large lane, by where they were predicted "
            "(process, thread) or busy (refused, 503).",
            ["outcome"],
            registry=registry,
        )
        self._recent: deque[bool] = deque(maxlen=review_window)
        self._recent_true = 0
        self._lock = threading.Lock()
        # labels() costs a lock and a hash per call; the children are kept (bounded by the
        # label sets of the models served)
        self._label_child: dict[tuple[str, str], Any] = {}
        self._reason_child: dict[str, Any] = {}
        self._version: str | None = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if self._watched and time.monotonic() - self._refreshed > 0.5:
            self.refresh()

    def observe_predictions(self, predictions: Iterable[dict]) -> None:
        flags = []
        label_child, reason_child = self._label_child, self._reason_child
        for pred in predictions:
            for head in HEADS:
                key = (head, pred[head])
                child = label_child.get(key)
                if child is None:
                    child = label_child[key] = self.predictions.labels(*key)
                child.inc()
            for reason in pred["review_reasons"]:
                child = reason_child.get(reason)
                if child is None:
                    child = reason_child[reason] = self.review_reasons.labels(reason)
                child.inc()
            flags.append(bool(pred["needs_review"]))
        self.appeals.inc(len(flags))
        self.worker_appeals.inc(len(flags))
        self.needs_review.inc(sum(flags))
        self.batch_size.observe(len(flags))
        recent = self._recent
        with self._lock:
            for flag in flags:
                if len(recent) == recent.maxlen:
                    self._recent_true -= recent[0]
                recent.append(flag)
                self._recent_true += flag
            if recent:
                self.review_rate.set(self._recent_true / len(recent))

    def observe_merge(self, requests: int, _appeals: int) -> None:
        self.merged_requests.observe(requests)

    def observe_large(self, outcome: str) -> None:
        self.large_requests.labels(outcome).inc()

    def model_loaded(self, version: str) -> None:
        """Count the load and switch the version label: the old one disappears, the new reads 1."""
        self.model_loads.labels("ok").inc()
        if self._version is not None and self._version != version:
            self.model_info.labels(self._version).set(0)  # what other workers' files read
            self.model_info.remove(self._version)
        self.model_info.labels(version).set(1)
        self._version = version
        self.refresh()

    def model_failed(self, _message: str) -> None:
        self.model_loads.labels("failed").inc()

    def watch(
        self,
        name: str,
        documentation: str,
        read: Callable[[], float],
        multiprocess_mode: str = "livemin",
    ) -> None:
        """A gauge read at scrape time (queue depth, rows written...).

        With several workers it is read at this worker's scrapes and requests instead (at most
        twice a second), and the workers' values combine by `multiprocess_mode` (`livemin`: a
        0/1 flag is 1 when every worker's is; `livesum` for counts).
        """
        gauge = Gauge(
            name, documentation, registry=self.registry, multiprocess_mode=multiprocess_mode
        )
        if self.multiprocess:
            self._watched.append((gauge, read))
            gauge.set(read())
        else:
            gauge.set_function(read)

    def refresh(self) -> None:
        """Write the watched gauges' current values (multiprocess mode: nobody reads them live)."""
        self._refreshed = time.monotonic()
        for gauge, read in self._watched:
            gauge.set(read())

    def render(self) -> bytes:
        """The Prometheus text of `/metrics`: this app's metrics, or every worker's."""
        self.refresh()
        return generate_latest(self._exposed)

    def close(self) -> None:
        """At a worker's exit: its live gauges leave the combined view."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())
