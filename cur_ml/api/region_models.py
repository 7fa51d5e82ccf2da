"""The models of every region a deployment serves: loaded on first use, unloaded when unused.

A region is served by a `RegionServing`: its model slot (watching the model directory and,
with a registry URI, the region's `champion` alias) and its predictor (coalescer and large
lane). The default region's is made at start; another region's on its first request, which
waits for the load. Above the memory budget the least recently used region (never the
default one) is unloaded, and so is a region unused for `model_idle_minutes`; its next
request loads it again.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cur_ml.api.batcher import DirectPredictor, PredictBatcher
from cur_ml.api.model_slot import ModelSlot
from cur_ml.errors import CurMlError, RegionModelMissingError, UnknownRegionError
from cur_ml.settings import Settings

__all__ = ["RegionModels", "RegionServing"]

log = logging.getLogger(__name__)

#: Seconds before a region whose model failed to load is tried again by a request.
RETRY_FAILED_SECONDS = 10.0


@dataclass
class RegionServing:
    """One region's model slot and predictor, and what its model costs."""

    region: str
    slot: ModelSlot
    predictor: PredictBatcher | DirectPredictor
    last_used: float = field(default_factory=time.monotonic)
    failed_at: float | None = None

    def close(self) -> None:
        self.slot.stop(timeout=1.0)
        self.predictor.close()


class RegionModels:
    """Region code → `RegionServing`, made by `make` on first use.

    Parameters
    ----------
    settings : the deployment's settings (regions, memory budget, idle time).
    make : builds a region's serving (slot + predictor) from settings scoped to it; the slot
        is not loaded yet.
    """

    def __init__(self, settings: Settings, make: Callable[[Settings], RegionServing]) -> None:
        self.settings = settings
        self.default = settings.default_region
        self._make = make
        self._served: dict[str, RegionServing] = {}
        self._lock = threading.Lock()  # the dict; loads of one region at a time
        self._loading: dict[str, threading.Lock] = {}
        self.evictions = 0
        #: A region used this recently is never unloaded: a request between `get` and its
        #: prediction must not find its predictor closed (the budget may be exceeded briefly).
        self.in_use_seconds = 10.0

    # ------------------------------------------------------------------ lookup
    def check(self, region: str | None) -> str:
        """`region` (None: the default one) when this deployment serves it."""
        region = self.default if region is None else region
        if region not in self.settings.all_regions():
            raise UnknownRegionError(region, self.settings.all_regions())
        return region

    def add(self, serving: RegionServing) -> RegionServing:
        """Put a serving made elsewhere (the default region's, at start) in the table."""
        with self._lock:
            self._served[serving.region] = serving
        return serving

    def peek(self, region: str) -> RegionServing | None:
        """The region's serving if it is in the table, without loading anything."""
        return self._served.get(region)

    def get(self, region: str | None) -> RegionServing:
        """The serving of `region` with its model loaded: made and loaded here (the caller
        waits) on first use. `RegionModelMissingError` when its model cannot be loaded."""
        region = self.check(region)
        serving = self._served.get(region)
        if serving is not None and serving.slot.model is not None:
            serving.last_used = time.monotonic()
            return serving
        if region == self.default and serving is not None:
            serving.slot.require()  # loaded at start, in the background: 503 until then
        with self._lock:
            gate = self._loading.setdefault(region, threading.Lock())
        with gate:  # one load per region; other regions' requests go on
            serving = self._served.get(region)
            if serving is None:
                serving = self._make(self.settings.for_region(region))
                with self._lock:
                    self._served[region] = serving
            if serving.slot.model is None:
                self._load(serving)
        serving.last_used = time.monotonic()
        self.evict_over_budget(keep=region)
        return serving

    def _load(self, serving: RegionServing) -> None:
        failed = serving.failed_at
        if failed is not None and time.monotonic() - failed < RETRY_FAILED_SECONDS:
            raise RegionModelMissingError(serving.region, serving.slot.error)
        try:
            serving.slot.load()
        except Exception as exc:
            serving.failed_at = time.monotonic()
            why = exc.message if isinstance(exc, CurMlError) else repr(exc)
            log.error("region %s: model not loaded: %s", serving.region, why)
            raise RegionModelMissingError(serving.region, why) from exc
        serving.failed_at = None
        log.info(
            "region %s: model %s loaded (it holds %s MiB)",
            serving.region,
            serving.slot.model.version if serving.slot.model else None,
            _mib(serving.slot.memory_bytes),
        )

    # --------------------------------------------------------------- eviction
    def loaded(self) -> list[RegionServing]:
        return [s for s in list(self._served.values()) if s.slot.model is not None]

    def evict_over_budget(self, keep: str | None = None) -> list[str]:
        """Unload least recently used regions (never the default, nor `keep`) while the
        loaded models take more than the budget, and regions idle beyond the idle time."""
        budget = self.settings.model_memory_mb * 2**20
        idle = self.settings.model_idle_minutes * 60
        now = time.monotonic()
        evicted = []
        candidates = sorted(
            (s for s in self.loaded() if s.region not in (self.default, keep)),
            key=lambda s: s.last_used,
        )
        for serving in candidates:
            if now - serving.last_used < self.in_use_seconds:
                continue
            total = sum(s.slot.memory_bytes or 0 for s in self.loaded())
            over = budget > 0 and total > budget
            stale = idle > 0 and now - serving.last_used > idle
            if over or stale:
                self._unload(serving, "memory budget" if over else "idle")
                evicted.append(serving.region)
        return evicted

    def _unload(self, serving: RegionServing, why: str) -> None:
        with self._lock:
            if self._served.get(serving.region) is serving:
                del self._served[serving.region]
        serving.close()  # requests holding the model finish with it; then it is garbage
        self.evictions += 1
        gc.unfreeze()  # loaded models are frozen (ModelSlot): let this one be collected
        gc.collect()
        gc.freeze()
        log.info(
            "region %s: model unloaded (%s; %s MiB)",
            serving.region,
            why,
            _mib(serving.slot.memory_bytes),
        )

    def watch_idle(self, stop: threading.Event, every: float = 30.0) -> threading.Thread | None:
        """Unload idle regions every `every` seconds (only when an idle time is set)."""
        if self.settings.model_idle_minutes <= 0:
            return None

        def run() -> None:
            while not stop.wait(every):
                try:
                    self.evict_over_budget()
                except Exception:  # never let the sweeper die
                    log.exception("unloading idle region models failed")

        thread = threading.Thread(target=run, name="cur-ml-region-idle", daemon=True)
        thread.start()
        return thread

    # ----------------------------------------------------------------- report
    def status(self) -> list[dict[str, Any]]:
        """Per region served: loaded or not, the version, the memory its model took."""
        out = []
        for region in self.settings.all_regions():
            serving = self._served.get(region)
            model = serving.slot.model if serving else None
            out.append(
                {
                    "region": region,
                    "default": region == self.default,
                    "loaded": model is not None,
                    "model_version": model.version if model else None,
                    "memory_mib": _mib(serving.slot.memory_bytes) if model and serving else None,
                    "idle_seconds": round(time.monotonic() - serving.last_used, 1)
                    if serving
                    else None,
                }
            )
        return out

    def close(self) -> None:
        for serving in list(self._served.values()):
            serving.close()


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)
