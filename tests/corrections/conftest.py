"""Fixtures of the corrections tests: the demo model, apps on SQLite or PostgreSQL, servers.

PostgreSQL: `CUR_ML_TEST_POSTGRES_URL` (default postgresql+psycopg://postgres@127.0.0.1:5432/test);
each test gets a fresh schema, dropped afterwards. Tests that need it skip when it is down.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from corrections_support import (
    DEMO,
    PG_URL,
    Server,
    fresh_schema,
    reachable,
    running,
    settings_for,
)
from fastapi.testclient import TestClient

from cur_ml.data import load_appeals
from cur_ml.model.training import train_model


# --------------------------------------------------------------------------- models
@pytest.fixture(scope="session")
def model_a_dir(tmp_path_factory) -> Path:
    """The demo model (trained on the demo train split) with the fixed version `test-a`."""
    model = train_model(load_appeals([DEMO], split="train"), show_progress=False)
    model.manifest["version"] = "test-a"
    return model.save(tmp_path_factory.mktemp("model_a"))


@pytest.fixture(scope="session")
def dev_texts() -> list[str]:
    return list(load_appeals([DEMO], split="dev").frame["text"])


@pytest.fixture
def served_dir(tmp_path, model_a_dir) -> Path:
    """A writable copy of model `test-a` (a retrain may replace it); `models/default` so the
    registry of challengers lands in this test's directory."""
    target = tmp_path / "models" / "default"
    shutil.copytree(model_a_dir, target)
    return target


# --------------------------------------------------------------------------- stores
@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The PostgreSQL server URL; skips (saying why) when it cannot be reached."""
    why = reachable(PG_URL)
    if why is not None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({why}); set CUR_ML_TEST_POSTGRES_URL")
    yield PG_URL


@pytest.fixture
def pg_store(postgres) -> Iterator[str]:
    """A database URL on a fresh PostgreSQL schema."""
    with fresh_schema(postgres) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A fresh store: a SQLite file, then a PostgreSQL schema (parametrised)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("pg_store")


@pytest.fixture
def app_on(tmp_path, model_a_dir) -> Callable[..., AbstractContextManager[TestClient]]:
    """`with app_on(database_url=..., **settings) as client:` — a fresh app on model test-a."""

    def make(**overrides) -> AbstractContextManager[TestClient]:
        overrides.setdefault("model_dir", model_a_dir)
        return running(settings_for(tmp_path, **overrides))

    return make


# --------------------------------------------------------------------------- servers
@pytest.fixture
def server_on(tmp_path, model_a_dir) -> Iterator[Callable[[str], Server]]:
    """`server_on(database_url)`: a started server process on model test-a (stopped at the end)."""
    servers: list[Server] = []

    def make(database_url: str) -> Server:
        server = Server(tmp_path, model_a_dir, database_url)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()
