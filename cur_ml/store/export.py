"""The correction history as a file: what `cur-ml store export corrections` writes and
`cur-ml corrections import` reads (CSV or JSON Lines, one event per row, oldest first).

The first five columns are the history format the importer always read (appeal_id, at, field,
old, new); the rest carry what the store adds, so that export → import → export gives the
same file: the prediction corrected, who, the comment, where it came from (`source`), the
idempotency key, and `kind` — `correction`, or `label_approval` for a label an admin let in
(then `new` is the label, `operator` who approved it, `idempotency_key` the correction that
brought it, if any), and the `region` of the correction. CSV cannot tell an empty text from
none: both are an empty cell.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
from sqlalchemy import Connection, Engine, select

from cur_ml.errors import BackupError, DataError
from cur_ml.store.backup import private_file
from cur_ml.store.corrections import CorrectionRecord
from cur_ml.store.db import aware, make_engine, sqlite_path, upgrade
from cur_ml.store.label_approvals import LabelApproval

__all__ = [
    "CORRECTION",
    "FORMATS",
    "HISTORY_COLUMNS",
    "LABEL_APPROVAL",
    "export_history",
    "export_to",
    "read_history",
]

HISTORY_COLUMNS = (
    "appeal_id",
    "at",
    "field",
    "old",
    "new",
    "prediction_id",
    "operator",
    "comment",
    "source",
    "idempotency_key",
    "kind",
    "region",
)
CORRECTION = "correction"
LABEL_APPROVAL = "label_approval"
FORMATS = ("csv", "jsonl")
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")


def _when(value: datetime) -> str:
    """One spelling of a stored time: UTC with microseconds (pandas parses a column of these
    in one format, and SQLite and PostgreSQL exports of one history are the same bytes)."""
    return aware(value).astimezone(UTC).isoformat(timespec="microseconds")


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read transaction that sees one state of the store for every table it reads."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            with conn.begin():
                yield conn
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN")  # pysqlite starts none for reads: take the snapshot now
        try:
            yield conn
        finally:
            conn.rollback()


def _events(conn: Connection) -> Iterator[dict[str, Any]]:
    """Corrections (id order), then label approvals (id order)."""
    c = CorrectionRecord
    q = select(
        c.appeal_id,
        c.created_at,
        c.field,
        c.old_value,
        c.new_value,
        c.prediction_id,
        c.operator,
        c.comment,
        c.source,
        c.idempotency_key,
        c.region,
    ).order_by(c.id)
    for row in conn.execution_options(yield_per=2_000).execute(q):
        yield {
            "appeal_id": row.appeal_id,
            "at": _when(row.created_at),
            "field": row.field,
            "old": row.old_value,
            "new": row.new_value,
            "prediction_id": row.prediction_id,
            "operator": row.operator,
            "comment": row.comment,
            "source": row.source,
            "idempotency_key": row.idempotency_key,
            "kind": CORRECTION,
            "region": row.region,
        }
    a = LabelApproval
    q = select(
        a.created_at, a.field, a.label, a.prediction_id, a.approved_by, a.comment, a.correction_key
    ).order_by(a.id)
    for row in conn.execution_options(yield_per=2_000).execute(q):
        yield {
            "appeal_id": None,
            "at": _when(row.created_at),
            "field": row.field,
            "old": None,
            "new": row.label,
            "prediction_id": row.prediction_id,
            "operator": row.approved_by,
            "comment": row.comment,
            "source": None,
            "idempotency_key": row.correction_key,
            "kind": LABEL_APPROVAL,
            "region": None,
        }


def export_history(engine: Engine, out: TextIO, fmt: str) -> dict[str, int]:
    """Write every correction and label approval to `out` as `fmt` (csv or jsonl); the counts
    of each kind written."""
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}: csv or jsonl")
    counts = {CORRECTION: 0, LABEL_APPROVAL: 0}
    writer = csv.DictWriter(out, HISTORY_COLUMNS, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    with _snapshot(engine) as conn:
        for event in _events(conn):
            counts[event["kind"]] += 1
            if writer is not None:
                writer.writerow(event)  # None is written as an empty cell
            else:
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
    return counts


def export_to(database_url: str, out: str, fmt: str, *, force: bool = False) -> dict[str, int]:
    """Export the history of the store at `database_url` to the file `out` (- : stdout),
    refused when the file exists unless `force`; written beside it and renamed when complete."""
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}: csv or jsonl")
    store = sqlite_path(database_url)
    if store is not None and not store.is_file():
        raise BackupError(f"no SQLite store at {store}: check CUR_ML_DATABASE_URL")
    target = None if out == "-" else Path(out).expanduser().absolute()
    if target is not None and target.exists() and not force:
        raise BackupError(f"{target} exists: choose another path, or --force to overwrite it")
    engine = make_engine(database_url)
    try:
        upgrade(engine)  # as every command does: an older store gets its tables first
        if target is None:
            return export_history(engine, sys.stdout, fmt)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            private_file(partial)  # operators' names and comments: for the owner only
            with open(partial, "w", encoding="utf-8", newline="") as fh:
                counts = export_history(engine, fh, fmt)
            os.replace(partial, target)
        except OSError as exc:
            raise BackupError(f"cannot write {target}: {exc.strerror}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return counts
    finally:
        engine.dispose()


def read_history(path: Path) -> pd.DataFrame:
    """A history file as a frame of text cells, None where a cell is empty or null: JSON Lines
    when the name ends in .jsonl / .ndjson (optionally .gz), CSV otherwise."""
    try:
        if path.name.lower().endswith(_JSONL_SUFFIXES):
            return _read_jsonl(path)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    return frame.astype(object).where(frame != "", None)


def _read_jsonl(path: Path) -> pd.DataFrame:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    rows: list[dict[str, Any]] = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {n}: not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise DataError(f"{path} line {n}: not a JSON object")
            rows.append({k: None if v is None else str(v) for k, v in obj.items()})
    return pd.DataFrame(rows, dtype=object)
