"""Engine, declarative base and schema migrations (Alembic, run programmatically)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase

__all__ = ["MIGRATIONS_DIR", "Base", "aware", "make_engine", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class Base(DeclarativeBase):
    """Base of every table of the store; Alembic compares migrations against its metadata."""


def aware(when: datetime) -> datetime:
    """A stored time as UTC-aware: SQLite gives back the naive UTC time that was written."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _dumps(obj: Any) -> str:
    """JSON columns: orjson (about 5x faster than json, and the writer thread holds the GIL
    while it serialises); numpy scalars become plain numbers."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain).decode()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar types orjson does not know
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer thread
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    """Engine for `url`; for SQLite: creates the file's directory, WAL mode, a busy timeout."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"json_serializer": _dumps}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(parsed, **kwargs)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (`alembic upgrade head`) on `engine`."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser interpolates '%': a URL with escapes (?options=-csearch_path%3D...) needs '%%'
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
