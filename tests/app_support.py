"""Helpers shared by the API, corrections and console tests (importable: tests/ is on sys.path)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cur_ml.api.main import create_app
from cur_ml.settings import Settings

__all__ = ["PG_URL", "fresh_schema", "reachable", "running"]

PG_URL = os.environ.get(
    "CUR_ML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


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


def reachable(url: str) -> str | None:
    """None when PostgreSQL answers at `url`, else why not."""
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()
    return None


@contextmanager
def fresh_schema(server_url: str) -> Iterator[str]:
    """A new schema `cur_ml_test_<random>`; yields a URL whose connections use it
    (search_path), drops it at the end."""
    schema = f"cur_ml_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text("SET lock_timeout = '20s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
