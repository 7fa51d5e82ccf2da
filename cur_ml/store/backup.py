"""`cur-ml store backup`: a consistent copy of the store that a person can run and restore.

SQLite: the online backup API copies one read snapshot while the service keeps writing (WAL
readers never block the writer). PostgreSQL: `pg_dump` in its custom format (one snapshot
too; compressed, restored with `pg_restore`), run with the password in `PGPASSWORD`, never on
its command line, so the command can be printed as it ran.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import URL, make_url

from cur_ml.errors import BackupError
from cur_ml.store.db import sqlite_path

__all__ = ["BackupResult", "backup_store", "private_file"]

#: Name of the database a PostgreSQL restore hint creates.
RESTORED_DB = "cur_ml_restored"


@dataclass(frozen=True)
class BackupResult:
    """What a backup wrote and how to get the store back from it."""

    path: Path
    method: str
    size: int
    #: The command that ran (pg_dump; no password in it), None for SQLite.
    command: str | None = None
    #: Rows per table in the copy (SQLite: counted in the copy itself).
    rows: dict[str, int] = field(default_factory=dict)
    #: Shell lines that restore the store from `path`.
    restore: list[str] = field(default_factory=list)


def backup_store(database_url: str, target: Path, *, force: bool = False) -> BackupResult:
    """Copy the store at `database_url` into `target` (refused when it exists, unless `force`)."""
    target = target.expanduser().absolute()
    if target.is_dir():
        raise BackupError(f"{target} is a directory: give the backup a file name")
    if not target.parent.is_dir():
        raise BackupError(f"directory {target.parent} does not exist")
    if target.exists() and not force:
        raise BackupError(f"{target} exists: choose another path, or --force to overwrite it")
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _backup_sqlite(url, target)
    if backend == "postgresql":
        return _backup_postgres(url, target)
    raise BackupError(f"cannot back up a {backend} store: only SQLite and PostgreSQL")


# --------------------------------------------------------------------------- SQLite
def _backup_sqlite(url: URL, target: Path) -> BackupResult:
    source = sqlite_path(url)
    if source is None:
        raise BackupError(
            "CUR_ML_DATABASE_URL names no SQLite file (in memory or a file: URI): nothing to copy"
        )
    if not source.is_file():
        raise BackupError(f"no SQLite store at {source}: check CUR_ML_DATABASE_URL")
    if target == source or (target.exists() and target.samefile(source)):
        raise BackupError(f"{target} is the store itself: back it up to another file")
    # Written beside the target and renamed at the end: a failed copy leaves nothing behind,
    # and --force replaces an old backup only with a complete one.
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        private_file(partial)
        with (
            closing(_connect_read_only(source)) as src,
            closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst)  # one step: one read snapshot, so the copy is consistent
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copy of {source} fails its integrity check: {check}")
            rows = _row_counts(dst)
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"cannot copy the SQLite store {source}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(
        path=target,
        method="sqlite online backup",
        size=target.stat().st_size,
        rows=rows,
        restore=[
            f"# stop the service, then put the copy in place (an old -wal must not meet it):\n"
            f"cp {shlex.quote(str(target))} {shlex.quote(str(source))} && "
            f"rm -f {shlex.quote(str(source))}-wal {shlex.quote(str(source))}-shm",
            f"# or serve the copy where it is:\n"
            f"export CUR_ML_DATABASE_URL={shlex.quote(f'sqlite:///{target}')}",
        ],
    )


def private_file(path: Path) -> None:
    """Create `path` readable by its owner only: a copy of the store holds personal data."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that can only read an existing file (a mistyped path creates nothing)."""
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


# --------------------------------------------------------------------------- PostgreSQL
_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([^\s,]+)")


def _schema(url: URL) -> str | None:
    """The schema a URL's `options=-csearch_path=...` puts the store in (it alone is dumped)."""
    options = url.query.get("options")
    text = " ".join(options) if isinstance(options, tuple) else options or ""
    found = _SEARCH_PATH.search(text)
    return found.group(1).strip("\"'") if found else None


def _libpq(url: URL) -> str:
    """The URL as libpq reads it (no driver, no password)."""
    bare = URL.create(
        "postgresql", url.username, None, url.host, url.port, url.database, url.query
    )  # URL.set(password=None) would keep the password
    return bare.render_as_string(hide_password=False)


def _backup_postgres(url: URL, target: Path) -> BackupResult:
    exe = shutil.which("pg_dump")
    if exe is None:
        raise BackupError(
            "pg_dump not found on PATH: install the PostgreSQL client tools of the server's "
            "major version or newer (Debian/Ubuntu: apt-get install postgresql-client)"
        )
    args = ["pg_dump", "--format=custom", "--no-password", f"--file={target}"]
    schema = _schema(url)
    if schema:
        args.append(f"--schema={schema}")
    args.append(f"--dbname={_libpq(url)}")
    command = shlex.join(args)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    try:
        # umask 077: the dump, personal data, is readable by its owner only.
        done = subprocess.run(
            [exe, *args[1:]], env=env, capture_output=True, text=True, umask=0o077
        )
    except OSError as exc:
        raise BackupError(f"cannot run {exe}: {exc.strerror} (ran: {command})") from exc
    if done.returncode != 0:
        target.unlink(missing_ok=True)  # never leave half a dump that looks like a backup
        why = next((ln.strip() for ln in done.stderr.splitlines() if ln.strip()), "no message")
        raise BackupError(f"pg_dump failed (exit {done.returncode}): {why} (ran: {command})")
    target.chmod(0o600)  # also when --force overwrote an older, more open file
    restored = url.set(database=RESTORED_DB)
    maintenance = _libpq(url.set(database="postgres", query={}))
    service_url = restored.render_as_string(hide_password=True)
    return BackupResult(
        path=target,
        method="pg_dump, custom format",
        size=target.stat().st_size,
        command=command,
        restore=[
            "# into a new database (pg_restore --list shows what the file holds):\n"
            f"createdb --maintenance-db={shlex.quote(maintenance)} {RESTORED_DB} && "
            f"pg_restore --no-owner --exit-on-error "
            f"--dbname={shlex.quote(_libpq(restored))} {shlex.quote(str(target))}",
            f"export CUR_ML_DATABASE_URL={shlex.quote(service_url)}",
        ],
    )
