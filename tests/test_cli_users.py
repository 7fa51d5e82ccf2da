"""`cur-ml users add|list|revoke` in real subprocesses, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from app_support import PG_URL, fresh_schema, reachable

from cur_ml.cli import main
from cur_ml.store import make_engine
from cur_ml.store.sessions import SessionRepository, SessionStart
from cur_ml.store.users import UserRepository

CLI = [sys.executable, "-c", "from cur_ml.cli import main; main()"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    why = reachable(PG_URL)
    if why is not None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({why}); set CUR_ML_TEST_POSTGRES_URL")
    with fresh_schema(PG_URL) as url:
        yield url


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def test_users_add_list_revoke(store_url, monkeypatch, capsys):
    env = {**os.environ, "CUR_ML_DATABASE_URL": store_url}
    monkeypatch.setenv("CUR_ML_DATABASE_URL", store_url)

    def run(*args: str) -> Done:
        """The command in this process (`main()` as the entry point runs it): fast."""
        monkeypatch.setattr(sys, "argv", ["cur-ml", "users", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Done(code, out.out, out.err)

    # Once as other programs call it: a real process, the token alone on stdout.
    added = subprocess.run(
        [*CLI, "users", "add", "Петрова", "--role", "operator"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert len(token) == 43 and "\n" not in token  # stdout: the token alone, for a pipe
    assert "Петрова" in added.stderr and "shown only now" in added.stderr
    assert run("add", "Сидоров", "--role", "admin").returncode == 0

    engine = make_engine(store_url)
    users = UserRepository(engine)
    stored = users.get("Петрова")
    assert token not in stored.token_hash and stored.token_hash.startswith("$argon2id$")
    assert users.check(token).name == "Петрова"
    sessions = SessionRepository(engine, idle=timedelta(hours=1), lifetime=timedelta(hours=1))
    session_id, _ = sessions.start(SessionStart("operator", "Петрова", user_id=stored.id))

    for args, problem in [
        (("add", "Петрова"), "an account named 'Петрова' exists already"),
        (("add", "Иванов", "--role", "boss"), "unknown role 'boss': expected operator or admin"),
        (("add", "   "), "an account needs a name"),
        (("revoke", "Нет такого"), "no account named 'Нет такого'"),
    ]:
        done = run(*args)
        assert done.returncode == 2, args
        assert done.stderr.startswith("cur-ml: error: ") and problem in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1

    listed = [json.loads(line) for line in run("list").stdout.splitlines()]
    assert [(u["name"], u["role"], u["revoked_at"]) for u in listed] == [
        ("Петрова", "operator", None),
        ("Сидоров", "admin", None),
    ]
    assert token not in run("list").stdout

    revoked = run("revoke", "Петрова")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert users.check(token) is None
    assert sessions.get(session_id) is None  # her console session ended with it
    listed = [json.loads(line) for line in run("list").stdout.splitlines()]
    assert listed[0]["revoked_at"] is not None and listed[1]["revoked_at"] is None
    engine.dispose()
