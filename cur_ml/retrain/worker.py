"""`cur-ml worker`: the process that runs retraining jobs, one at a time, off the queue.

The API only queues jobs; any number of workers may share a store. Each claims a job
exactly once (see `RetrainRunRepository.claim`), beats a heartbeat while it trains, and
records the outcome. A worker killed mid-job stops beating: the next claim by any worker
marks that job failed, and the champion — moved only at the very end of a job — keeps
serving.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from cur_ml.errors import CurMlError
from cur_ml.retrain import jobs
from cur_ml.settings import Settings
from cur_ml.store.corrections import CorrectionRepository
from cur_ml.store.retrain_runs import RetrainRun, RetrainRunRepository

__all__ = ["Worker", "worker_name"]

log = logging.getLogger(__name__)


def worker_name(kind: str = "worker") -> str:
    """`kind@host:pid:random` — unique per process start, readable in the runs table."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims queued jobs of `engine`'s store and runs them with `settings`."""

    def __init__(self, settings: Settings, engine: Engine, name: str | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.name = name or worker_name()
        self.runs = RetrainRunRepository(
            engine,
            stale_after=timedelta(seconds=settings.worker_stale_seconds),
            default_region=settings.default_region,
        )

    def run_once(self) -> RetrainRun | None:
        """Claim the oldest queued job and run it; None when the queue is empty."""
        run = self.runs.claim(self.name)
        if run is None:
            return None
        log.info(
            "retrain job %s (%s, region %s) claimed by %s",
            run.id,
            run.trigger,
            run.region,
            self.name,
        )
        return self.execute(run)

    def run_now(
        self, trigger: str, options: dict[str, Any] | None = None, region: str | None = None
    ) -> RetrainRun:
        """Run a job of `region` in this process at once, recorded like a queued one
        (`cur-ml retrain`)."""
        seen = CorrectionRepository(self.engine).last_id()
        run = self.runs.start(trigger, seen, options or {}, worker=self.name, region=region)
        return self.execute(run)

    def serve(self, stop: threading.Event) -> None:
        """Run jobs until `stop` is set (checked between jobs; a job in progress finishes)."""
        log.info("worker %s waiting for retrain jobs", self.name)
        while not stop.is_set():
            try:
                done = self.run_once()
            except Exception:  # store down: try again later, never die of it
                log.exception("worker %s cannot reach the job queue", self.name)
                done = None
            if done is None:
                stop.wait(self.settings.worker_poll_seconds)

    def execute(self, run: RetrainRun) -> RetrainRun:
        """Run the claimed job `run` and record how it ended."""
        # The job's region: its model, registry name, base data and corrections.
        settings = self.settings.for_region(run.region)
        with self._heartbeat(run.id):
            try:
                result = jobs.run_retrain(settings, self.engine, run.options or {})
            except CurMlError as exc:  # refused, or bad data: one line says why
                self._finish(run.id, "failed", error=exc.message)
            except Exception as exc:  # recorded; the champion keeps serving
                log.exception("retrain %s failed", run.id)
                why = "".join(traceback.format_exception_only(exc)).strip()
                self._finish(run.id, "failed", error=why)
            except BaseException:  # Ctrl-C / SystemExit: say so, then stop
                self._finish(run.id, "failed", error=f"worker {self.name} was interrupted")
                raise
            else:
                status = "promoted" if result.promoted else "rejected"
                self._finish(run.id, status, result=result.to_dict())
                log.info("retrain %s %s challenger %s", run.id, status, result.challenger_version)
        return self.runs.get(run.id) or run

    @contextmanager
    def _heartbeat(self, run_id: str) -> Iterator[None]:
        """Beat every `worker_heartbeat_seconds` in a thread while the job runs."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.settings.worker_heartbeat_seconds):
                try:
                    if not self.runs.heartbeat(run_id, self.name):
                        log.warning("retrain %s is no longer recorded as ours", run_id)
                except Exception as exc:  # store away: beat again next time
                    log.warning("heartbeat of retrain %s failed: %s", run_id, exc)

        thread = threading.Thread(target=beat, name="cur-ml-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(5)

    def _finish(self, run_id: str, status: str, **values: Any) -> None:
        try:
            self.runs.finish(run_id, status, **values)
        except Exception:  # store down: the heartbeat stops, the next claim fails the job
            log.exception("retrain %s finished (%s) but could not be recorded", run_id, status)
