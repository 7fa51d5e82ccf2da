"""`cur-ml store backup`: a copy that opens and holds every row committed before it, taken
while the store is written to (SQLite), or a pg_dump that restores into a fresh database
(PostgreSQL) by the commands the backup printed; clear one-line refusals."""

from __future__ import annotations

import re
import shlex
import sqlite3
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cur_ml.cli import app
from cur_ml.store import PredictionRepository, make_engine, prediction_row, upgrade
from cur_ml.store.corrections import CorrectionIn, CorrectionRepository
from cur_ml.store.label_approvals import LabelApprovalIn, LabelApprovalRepository

CLI = [sys.executable, "-c", "from cur_ml.cli import main; main()"]
TABLES = ("predictions", "corrections", "label_approvals", "retrain_runs", "alembic_version")


def _prediction(n: int) -> dict:
    return {
        "prediction_id": str(uuid.UUID(int=n)),
        "id": f"a{n}",
        "model_version": "test-a",
        "category": "Благоустройство",
        "reason": "Мусор во дворе",
        "urgency": "medium",
        "agency": "Администрация Невского района",
        "needs_review": n % 3 == 0,
        "confidence": {"category": 0.9, "reason": 0.6, "urgency": 0.8, "agency": 0.7},
        # A payload of the size a real answer has (explanations), so the copy takes a while.
        "explanation": {"reason": [{"word": "мусор", "start": i, "end": i + 5} for i in range(30)]},
    }


def _seed(engine, predictions: int) -> None:
    upgrade(engine)
    rows = [
        prediction_row({"text": f"Во дворе мусор, дом {n}", "district": "Невский"}, _prediction(n))
        for n in range(predictions)
    ]
    PredictionRepository(engine).add_many(rows)
    CorrectionRepository(engine).add(
        [
            CorrectionIn(
                field="agency",
                new_value="СПб ГКУ ЖА Невского района",
                operator="Петрова",
                prediction_id=rows[0]["prediction_id"],
                comment="дом обслуживает ЖА",
            )
        ]
    )
    LabelApprovalRepository(engine).approve(
        LabelApprovalIn(field="reason", label="Открыт люк", approved_by="Иванова")
    )


def _invoke(database_url: str, *args: str):
    result = CliRunner().invoke(
        app, ["store", "backup", *args], env={"CUR_ML_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_sqlite_backup_while_a_thread_writes(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    engine = make_engine(url)
    _seed(engine, predictions=3_000)
    repo = CorrectionRepository(engine)
    committed: list[str] = []  # keys whose commit has returned, in commit order
    started, stop = threading.Event(), threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            key = f"w-{n}"
            repo.add_history(
                [
                    CorrectionIn(
                        field="reason",
                        new_value=f"Мусор {n}",
                        operator="writer",
                        appeal_id=str(n),
                        idempotency_key=key,
                        source="import",
                        created_at=datetime.now(UTC),
                    )
                ]
            )
            committed.append(key)
            n += 1
            if n == 20:
                started.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert started.wait(60), "the writer thread did not get going"
        before = list(committed)
        out = _invoke(url, str(tmp_path / "copy.sqlite3")).output
    finally:
        stop.set()
        writer.join(60)
    assert "rows: " in out and "predictions 3,000" in out
    assert (tmp_path / "copy.sqlite3").stat().st_mode & 0o077 == 0  # personal data: owner only
    assert f"CUR_ML_DATABASE_URL=sqlite:///{tmp_path / 'copy.sqlite3'}" in out

    with sqlite3.connect(f"file:{tmp_path / 'copy.sqlite3'}?mode=ro", uri=True) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [k for (k,) in copy.execute("SELECT idempotency_key FROM corrections ORDER BY id")]
        assert copy.execute("SELECT count(*) FROM predictions").fetchone()[0] == 3_000
        assert copy.execute("SELECT count(*) FROM label_approvals").fetchone()[0] == 1
    written = [k for k in keys if k.startswith("w-")]
    assert set(before) <= set(written)  # everything committed before the backup began
    assert written == committed[: len(written)]  # one snapshot: a prefix, no holes
    # The copy serves: the store's own code reads it.
    copied = make_engine(f"sqlite:///{tmp_path / 'copy.sqlite3'}")
    assert PredictionRepository(copied).count() == 3_000
    copied.dispose()
    engine.dispose()


def test_an_existing_path_is_refused_without_force(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    engine = make_engine(url)
    _seed(engine, predictions=5)
    engine.dispose()
    target = tmp_path / "backup.sqlite3"
    target.write_text("an older backup")
    env = {"CUR_ML_DATABASE_URL": url, "CUR_ML_MLFLOW_ENABLED": "false", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [*CLI, "store", "backup", str(target)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"cur-ml: error: {target} exists: choose another path, or --force to overwrite it"
    ]
    assert target.read_text() == "an older backup"

    _invoke(url, str(target), "--force")
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT count(*) FROM predictions").fetchone()[0] == 5
    assert not list(tmp_path.glob(".*.partial"))  # nothing left beside it


def test_no_store_no_backup(tmp_path):
    done = subprocess.run(
        [*CLI, "store", "backup", str(tmp_path / "b.sqlite3")],
        env={"CUR_ML_DATABASE_URL": f"sqlite:///{tmp_path / 'missing.sqlite3'}"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"no SQLite store at {tmp_path / 'missing.sqlite3'}" in done.stderr
    assert not (tmp_path / "missing.sqlite3").exists()  # the backup created no empty store


def _rows(url: str) -> dict[str, list[tuple]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}")))) for t in TABLES}
    finally:
        engine.dispose()


def test_postgres_backup_restores_by_the_printed_commands(pg_store, tmp_path):
    engine = make_engine(pg_store)
    _seed(engine, predictions=50)
    engine.dispose()
    # Trust authentication ignores the password: the dump works, and it must not be printed.
    password = "not-shown-" + uuid.uuid4().hex[:8]
    with_password = make_url(pg_store).set(password=password).render_as_string(False)
    dump = tmp_path / "store.dump"
    out = _invoke(with_password, str(dump)).output
    assert password not in out
    ran = re.search(r"^ran: (pg_dump .*)$", out, re.M)
    assert ran and "--format=custom" in ran.group(1) and f"--file={dump}" in ran.group(1)
    assert dump.read_bytes()[:5] == b"PGDMP"  # the custom format's magic
    assert dump.stat().st_mode & 0o077 == 0

    restore = re.search(r"^createdb .*pg_restore .*$", out, re.M)
    service = re.search(r"^export (CUR_ML_DATABASE_URL=.+)$", out, re.M)
    assert restore and service
    database = f"cur_ml_test_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(pg_store).set(query={}), isolation_level="AUTOCOMMIT")
    try:
        done = subprocess.run(
            restore.group(0).replace("cur_ml_restored", database),
            shell=True,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        (assignment,) = shlex.split(service.group(1))  # as the shell reads the line
        restored = assignment.removeprefix("CUR_ML_DATABASE_URL=").replace(
            "cur_ml_restored", database
        )
        source = _rows(pg_store)
        assert len(source["predictions"]) == 50 and len(source["label_approvals"]) == 1
        assert _rows(restored) == source
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def test_pg_dump_missing_or_failing_is_one_line(postgres, tmp_path):
    target = tmp_path / "b.dump"
    args = [*CLI, "store", "backup", str(target)]
    env = {"CUR_ML_DATABASE_URL": postgres, "PATH": str(tmp_path)}  # no pg_dump there
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert [ln for ln in done.stderr.splitlines() if ln] == [
        "cur-ml: error: pg_dump not found on PATH: install the PostgreSQL client tools of the "
        "server's major version or newer (Debian/Ubuntu: apt-get install postgresql-client)"
    ]

    missing = make_url(postgres).set(database=f"cur_ml_none_{uuid.uuid4().hex[:8]}")
    env = {"CUR_ML_DATABASE_URL": missing.render_as_string(False), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("cur-ml: error: pg_dump failed (exit 1): ")
    assert "does not exist" in lines[0] and "(ran: pg_dump --format=custom" in lines[0]
    assert not target.exists()
