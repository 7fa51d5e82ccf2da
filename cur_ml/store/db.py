"""Engine, declarative base and schema migrations (Alembic, run programmatically)."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase

from cur_ml.errors import StoreUnavailableError

__all__ = [
    "MIGRATIONS_DIR",
    "Base",
    "aware",
    "commit_kept",
    "fold",
    "make_engine",
    "sqlite_file_problem",
    "sqlite_path",
    "upgrade",
]

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


def fold(text: str | None) -> str | None:
    """Text as search compares it: case-folded, «ё» as «е» (SQLite's `lower` and `LIKE`
    fold ASCII letters only, so the queue's text search calls this as `cur_ml_fold`)."""
    return None if text is None else text.casefold().replace("ё", "е")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer thread
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    dbapi_conn.create_function("cur_ml_fold", 1, fold, deterministic=True)


def sqlite_path(url: URL | str) -> Path | None:
    """The database file of a SQLite URL; None for another backend, `:memory:` or a `file:` URI."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("uri") in ("true", "1"):
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser().absolute()


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` now (device, inode); None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def sqlite_file_problem(path: Path) -> str | None:
    """Why the SQLite file at `path` cannot take writes (names the path: for logs only)."""
    if _identity(path) is None:
        return f"the database file {path} is missing"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"the database file {path} is not writable"
    return None


_IDENTITY = "cur_ml_sqlite_file"
_last_commit = threading.local()  # (path, identity) of this thread's last commit


def _watch_sqlite_file(engine: Engine, path: Path) -> None:
    """Keep every connection on the file that is at `path` now.

    A SQLite connection keeps writing into its file after the file is deleted or moved
    away, and every row committed there is lost to the service. So: after the first
    connection has created the file, connections only open an existing one (`mode=rw`);
    each remembers which file (inode) it opened; one whose file is no longer at `path` is
    discarded at checkout (the next opens the file that is there now: a restored copy),
    and cannot commit (`StoreUnavailableError`).
    """
    created = threading.Event()

    def open_existing(_dialect: Any, _record: Any, cargs: list, cparams: dict) -> None:
        if created.is_set() and not cparams.get("uri"):
            cargs[:] = [f"file:{quote(str(path))}?mode=rw"]
            cparams["uri"] = True

    def remember(_dbapi_conn: Any, record: Any) -> None:
        created.set()
        record.info[_IDENTITY] = _identity(path)

    def recycle(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.get(_IDENTITY) != _identity(path):
            raise DisconnectionError("the database file is not the one this connection opened")

    def guard(conn: Any) -> None:
        now = _identity(path)
        if now is None or now != conn.info.get(_IDENTITY):
            raise StoreUnavailableError("the database file was removed or replaced: not committed")
        _last_commit.value = (path, now)

    event.listen(engine, "do_connect", open_existing)
    event.listen(engine, "connect", remember)
    event.listen(engine, "checkout", recycle)
    event.listen(engine, "commit", guard)


def commit_kept(engine: Engine) -> bool:
    """After a commit on this thread: False when its SQLite file has left its path since (the
    commit may have gone into a deleted file); always True for other backends."""
    path = sqlite_path(engine.url)
    last = getattr(_last_commit, "value", None)
    if path is None or last is None or last[0] != path:
        return True
    return _identity(path) == last[1]


def make_engine(url: str) -> Engine:
    """Engine for `url`; for SQLite: creates the file's directory, WAL mode, a busy timeout,
    connections that never write into a deleted file; for a server: connections checked
    before use (`pool_pre_ping`: the pool recovers when the server is back) and a connect
    timeout, so a probe of a server that is gone fails in seconds."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"json_serializer": _dumps}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    path = sqlite_path(parsed)
    if is_sqlite:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {"connect_timeout": 5}
    engine = create_engine(parsed, **kwargs)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    if path is not None:
        _watch_sqlite_file(engine, path)
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
