"""The model being served, swapped atomically when its directory changes.

A request reads `slot.model` once and keeps that object to the end, so requests
in flight finish on the old model while a new one loads beside it; the switch is
one reference assignment.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import random
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from cur_ml.errors import CurMlError, ModelNotReadyError
from cur_ml.model.bundle import MANIFEST_NAME, RoutingModel, load_model

__all__ = ["ModelNotReadyError", "ModelSlot", "measured_allocations"]

log = logging.getLogger(__name__)
#: One measured load at a time: tracemalloc counts every thread's allocations.
_MEASURING = threading.Lock()


@contextmanager
def measured_allocations() -> Iterator[Callable[[], int | None]]:
    """Bytes Python allocated and kept while the block ran (tracemalloc: numpy arrays count
    too), read through the yielded callable once the block is done; None when tracemalloc was
    already running for someone else. Resident memory would not do: the allocator reuses what
    an unloaded model freed, so a reload shows no growth."""
    kept: list[int | None] = [None]
    with _MEASURING:
        if tracemalloc.is_tracing():
            yield lambda: None
            return
        tracemalloc.start()
        try:
            yield lambda: kept[0]
        finally:
            kept[0] = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()


def _freeze_heap() -> None:
    """Keep the garbage collector off the model's objects.

    A loaded model is some 10^5 long-lived containers (vocabularies, caches); every full
    collection walked them all (0.2 s, a stall of every request in flight). Frozen
    objects are skipped. The previous model's objects are unfrozen first, so that a
    swap frees them.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _manifest_signature(directory: Path) -> tuple[int, int] | None:
    try:
        stat = (directory / MANIFEST_NAME).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _manifest_sha(directory: Path) -> str | None:
    try:
        return hashlib.sha256((directory / MANIFEST_NAME).read_bytes()).hexdigest()
    except OSError:
        return None


class ModelSlot:
    """Holds the served `RoutingModel`; loads, reloads and watches its directory.

    Parameters
    ----------
    directory : model directory (manifest.json + model.pkl).
    on_swap : called with each model put in service (metrics).
    on_failure : called with the message of each failed load.
    resolve : where the model is now, asked before every load (an MLflow registry alias
        such as ``models:/cur-ml-{region}@champion`` moves); None: always `directory`.
    key : the model signing key, asked before every load (a key file may be replaced);
        None: the configured one. A model whose manifest does not verify is never read.
    """

    def __init__(
        self,
        directory: Path,
        on_swap: Callable[[RoutingModel], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
        resolve: Callable[[], Path] | None = None,
        key: Callable[[], bytes] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.resolve = resolve
        self.key = key
        self.model: RoutingModel | None = None
        self.loaded_at: datetime | None = None
        self.error: str | None = None  # why the last load failed
        #: Memory the model in service holds: what its load allocated and kept (None: not
        #: measured; other threads' allocations meanwhile count too).
        self.memory_bytes: int | None = None
        self.on_swap = on_swap
        self.on_failure = on_failure
        self._manifest_sha: str | None = None
        self._signature: tuple[int, int] | None = None
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._first_load: threading.Thread | None = None

    # ------------------------------------------------------------------ use
    def require(self) -> RoutingModel:
        """The model to answer with; `ModelNotReadyError` before the first load."""
        model = self.model
        if model is None:
            raise ModelNotReadyError(self.error or "the model is still loading")
        return model

    @property
    def ready(self) -> bool:
        return self.model is not None

    # ----------------------------------------------------------------- load
    def load(self) -> tuple[str | None, str]:
        """Load the directory's model and put it in service; returns (previous, new) versions.

        Raises the domain error when the model cannot be loaded; the old model stays.
        """
        with self._load_lock:  # one load at a time; requests are never blocked by it
            try:
                if self.resolve is not None:
                    self.directory = Path(self.resolve())
                signature = _manifest_signature(self.directory)
                sha = _manifest_sha(self.directory)
                with measured_allocations() as kept:
                    model = load_model(self.directory, self.key() if self.key else None)
                    # A warm-up prediction builds lazy state (tokenizer, caches) before traffic.
                    model.predict(
                        [{"text": "Прогрев модели: не горит фонарь во дворе."}], explain=True
                    )
            except Exception as exc:
                self.error = exc.message if isinstance(exc, CurMlError) else repr(exc)
                # do not retry the same files on every poll
                self._signature = _manifest_signature(self.directory)
                if self.on_failure is not None:
                    self.on_failure(self.error)
                raise
            previous = self.model.version if self.model is not None else None
            self.model = model  # the swap: one reference assignment
            self.loaded_at = datetime.now(UTC)
            self.error = None
            self._manifest_sha, self._signature = sha, signature
            _freeze_heap()
            self.memory_bytes = kept()
        if self.on_swap is not None:
            self.on_swap(model)
        log.info(
            "model in service",
            extra={"model_version": model.version, "previous_version": previous},
        )
        return previous, model.version

    def load_in_background(self) -> threading.Thread:
        """First load without blocking start-up (`/readyz` answers 503 meanwhile).

        Idempotent: a second call while (or after) the first load runs starts nothing.
        """
        if self._first_load is not None:
            return self._first_load

        def run() -> None:
            try:
                self.load()
            except CurMlError as exc:
                log.error("model not loaded: %s", exc.message)
            except Exception:  # a broken file must not kill the thread silently
                log.exception("model not loaded")

        self._first_load = self._spawn(run, "cur-ml-model-load")
        return self._first_load

    # ---------------------------------------------------------------- watch
    def changed(self) -> bool:
        """Whether manifest.json differs from the one of the model in service."""
        signature = _manifest_signature(self.directory)
        if signature is None or signature == self._signature:
            return False
        sha = _manifest_sha(self.directory)
        if sha == self._manifest_sha:
            self._signature = signature  # touched, not changed
            return False
        return True

    def watch(self, interval: float) -> threading.Thread | None:
        """Poll the manifest every `interval` seconds and reload when it changes."""
        if interval <= 0:
            return None

        def run() -> None:
            while not self._stop.wait(interval):
                if not self.changed():
                    continue
                try:
                    self.load()
                except Exception as exc:
                    log.error("model reload failed; still serving the old one: %s", exc)

        return self._spawn(run, "cur-ml-model-watch")

    def watch_source(
        self, interval: float, current_version: Callable[[], str | None]
    ) -> threading.Thread | None:
        """Every `interval` seconds ask `current_version` which model the source (a registry
        alias) points to now, and reload when it is not the one in service."""
        if interval <= 0 or self.resolve is None:
            return None

        def run() -> None:
            # ±20% jitter: replicas started together do not all ask the registry at once.
            while not self._stop.wait(interval * random.uniform(0.8, 1.2)):
                try:
                    wanted = current_version()
                    if wanted is None or self.model is None or wanted == self.model.version:
                        continue
                    log.info("the registry alias moved to %s; loading it", wanted)
                    self.load()
                except Exception as exc:  # registry away or a bad model: keep serving
                    log.error("registry check failed; still serving the old model: %s", exc)

        return self._spawn(run, "cur-ml-registry-watch")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread
