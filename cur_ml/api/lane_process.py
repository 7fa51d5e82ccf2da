"""A child process that predicts for the large lane, so a long prediction never holds the GIL
that single-appeal requests need in the serving process.

The child loads the model from the served directory and predicts only when the file there is
the one the parent answers with (same `model_sha256`), so a request stays answered by one
model across a hot swap; otherwise it says so and the parent predicts itself. It runs at a
lower CPU priority (the serving process wins a contended core) and exits when the process
that started it dies (a SIGKILLed worker leaves no orphan behind).
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from cur_ml.errors import CurMlError
from cur_ml.model.bundle import MANIFEST_NAME, RoutingModel, load_model

__all__ = ["ProcessRunner", "model_sha"]

log = logging.getLogger(__name__)

Records = list[dict[str, Any]]
_WARM_UP = [{"text": "Прогрев модели: не горит фонарь во дворе."}]

# ------------------------------------------------------------------- in the child
_models: dict[str, RoutingModel] = {}  # model_sha256 → the model (one at a time)


def _init(nice: int, parent: int) -> None:
    """Lower the child's priority; leave Ctrl-C to the parent (which stops the child); exit
    once the parent is gone (its pipes never close here)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice:
        try:
            os.nice(nice)
        except OSError:  # not allowed here: equal priority still keeps the GIL apart
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="cur-ml-lane-parent-watch", daemon=True).start()


def _model(directory: str, sha: str, key: bytes | None) -> RoutingModel | None:
    """The model whose file has `sha`, loaded from `directory` (its manifest verified with
    `key`, as the parent's); None when the file there is another one (the directory changed
    since the parent loaded it)."""
    model = _models.get(sha)
    if model is not None:
        return model
    try:
        manifest = json.loads((Path(directory) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("model_sha256") != sha:
        return None
    try:
        model = load_model(directory, key)
    except CurMlError:  # replaced by a model that does not verify: the parent predicts
        return None
    if model_sha(model) != sha:
        return None
    model.predict(_WARM_UP, explain=True)
    _models.clear()
    _models[sha] = model
    return model


def _predict(
    directory: str, sha: str, key: bytes | None, records: Records, explain: bool
) -> Records | None:
    model = _model(directory, sha, key)
    return None if model is None else model.predict(records, explain=explain)


# ------------------------------------------------------------------ in the parent
def model_sha(model: Any) -> str | None:
    """The sha256 of the model's file (None for a model that was never saved)."""
    manifest = getattr(model, "manifest", None)
    sha = manifest.get("model_sha256") if isinstance(manifest, dict) else None
    return sha if isinstance(sha, str) else None


class ProcessRunner:
    """Runs predictions in one child process (started with the first one).

    The child is started with `spawn`: like uvicorn's workers, it imports the parent's
    `__main__`, so a script that calls `serve()` must do it under `if __name__ == "__main__"`.
    A child that dies is replaced with a later request, not sooner than `pause` seconds after.

    Parameters
    ----------
    nice : how much lower the child's CPU priority is (0: the same).
    pause : seconds without a child after one died (the lane predicts in-thread meanwhile).
    key : the model signing key the child verifies the model with (None: the configured one).
    """

    def __init__(
        self, nice: int = 10, pause: float = 30.0, key: Callable[[], bytes] | None = None
    ) -> None:
        self.nice = nice
        self.pause = pause
        self.key = key
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._broken_at = -math.inf

    def predict(
        self, directory: Path, model: RoutingModel, records: Records, explain: bool
    ) -> Records | None:
        """`model.predict(records)` done by the child; None when the child cannot do it (the
        model was never saved, the directory holds another file now, the child died)."""
        sha = model_sha(model)
        if sha is None:
            return None
        try:
            key = self.key() if self.key is not None else None
        except CurMlError as exc:  # the key went away since the parent loaded the model
            log.error("large lane predicts in-thread: %s", exc.message)
            return None
        future = self._submit(str(directory), sha, key, records, explain)
        if future is None:
            return None
        try:
            return future.result()
        except BrokenProcessPool:
            log.error(
                "the large-lane process died; large requests are predicted in-thread for "
                "%.0f s, then in a new process",
                self.pause,
            )
            self._discard()
            return None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, *args: Any) -> Future | None:
        with self._lock:
            if self._closed or time.monotonic() - self._broken_at < self.pause:
                return None
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init,
                    initargs=(self.nice, os.getpid()),
                )
            try:
                return self._pool.submit(_predict, *args)
            except BrokenProcessPool:
                self._pool, self._broken_at = None, time.monotonic()
                return None

    def _discard(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._broken_at = time.monotonic()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
