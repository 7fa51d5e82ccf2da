"""Helpers shared by the API, corrections and console tests (importable: tests/ is on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from cur_ml.api.main import create_app
from cur_ml.settings import Settings

__all__ = ["running"]


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """A started app (lifespan run) whose model is loaded."""
    app = create_app(settings)
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while not app.state.slot.ready:
            assert app.state.slot.error is None, app.state.slot.error
            assert time.monotonic() < deadline, "model did not load"
            time.sleep(0.01)
        yield client
