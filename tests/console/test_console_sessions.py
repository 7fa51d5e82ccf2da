"""Console sign-in with personal accounts and server-side sessions (SQLite and PostgreSQL):
sign-out and revocation end a session at once, copied cookies included; an idle session
ends; a changed environment token ends its sessions; failed sign-ins are limited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from app_support import PG_URL, fresh_schema, reachable
from fastapi.testclient import TestClient

from cur_ml.console.session import COOKIE
from cur_ml.store import make_engine, upgrade
from cur_ml.store.sessions import SessionRepository, SessionStart
from cur_ml.store.users import UserRepository


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


def _users(client: TestClient) -> UserRepository:
    return UserRepository(client.app.state.corrections.engine)


def _login(client: TestClient, csrf_of, token: str, name: str = ""):
    page = client.get("/console/login")
    return client.post(
        "/console/login", data={"token": token, "name": name, "csrf": csrf_of(page.text)}
    )


def _copy(client: TestClient, address: str = "testclient") -> TestClient:
    """Another browser holding a copy of `client`'s session cookie."""
    other = TestClient(client.app, follow_redirects=False, client=(address, 50000))
    other.cookies.set(COOKIE, client.cookies.get(COOKIE, path="/console"), path="/console")
    return other


def test_a_personal_token_signs_in_as_its_account(store_url, app_factory, csrf_of):
    with app_factory(database_url=store_url) as client:
        _, token = _users(client).add("Петрова", "operator")
        r = _login(client, csrf_of, token)
        assert r.status_code == 303, r.text
        page = client.get("/console/")
        assert page.status_code == 200
        assert "Петрова · оператор" in page.text


def test_a_name_that_is_not_the_accounts_is_refused(store_url, app_factory, csrf_of):
    with app_factory(database_url=store_url) as client:
        _, token = _users(client).add("Петрова", "operator")
        r = _login(client, csrf_of, token, name="Иванова")
        assert r.status_code == 403 and "Токен не подходит." in r.text
        assert _login(client, csrf_of, token, name="Петрова").status_code == 303


def test_a_copied_cookie_stops_working_after_sign_out(store_url, app_factory, csrf_of, tokens):
    with app_factory(database_url=store_url) as client:
        _, token = _users(client).add("Петрова", "operator")
        assert _login(client, csrf_of, token).status_code == 303
        copy = _copy(client)
        page = client.get("/console/")
        assert copy.get("/console/").status_code == 200  # the copy works while signed in
        r = client.post("/console/logout", data={"csrf": csrf_of(page.text)})
        assert r.headers["location"] == "/console/login?out=1"
        assert copy.get("/console/").status_code == 303  # ended in the store, not just here
        assert copy.get("/console/").headers["location"].startswith("/console/login")
        # An environment token's session ends the same way.
        assert _login(client, csrf_of, tokens["operator"], "Иванова").status_code == 303
        copy = _copy(client)
        page = client.get("/console/")
        client.post("/console/logout", data={"csrf": csrf_of(page.text)})
        assert copy.get("/console/").status_code == 303


def test_revoking_an_account_ends_its_sessions_at_once(store_url, app_factory, csrf_of):
    with app_factory(database_url=store_url) as client:
        users = _users(client)
        _, token = users.add("Петрова", "operator")
        _, other = users.add("Сидоров", "operator")
        assert _login(client, csrf_of, token).status_code == 303
        colleague = TestClient(client.app, follow_redirects=False)
        assert _login(colleague, csrf_of, other).status_code == 303
        users.revoke("Петрова")
        assert client.get("/console/").status_code == 303
        assert colleague.get("/console/").status_code == 200  # others keep working
        r = _login(client, csrf_of, token)
        assert r.status_code == 403


def test_a_changed_environment_token_ends_its_sessions(tmp_path, app_factory, csrf_of, tokens):
    with app_factory() as client:
        assert _login(client, csrf_of, tokens["admin"]).status_code == 303
        cookie = client.cookies.get(COOKIE, path="/console")
    with app_factory() as same:
        same.cookies.set(COOKIE, cookie, path="/console")
        assert same.get("/console/").status_code == 200  # a restart keeps sessions
    with app_factory(admin_token="a-new-admin-token-0123456789") as rotated:
        rotated.cookies.set(COOKIE, cookie, path="/console")
        assert rotated.get("/console/").status_code == 303


def test_sessions_end_when_idle_or_old_and_only_their_hash_is_stored(store_url):
    engine = make_engine(store_url)
    upgrade(engine)
    repo = SessionRepository(engine, idle=timedelta(minutes=30), lifetime=timedelta(hours=12))
    raw, record = repo.start(SessionStart(role="operator", name="Петрова"))
    assert record.id != raw and raw not in record.id  # the store holds its SHA-256
    now = datetime.now(UTC)
    assert repo.get(raw, now + timedelta(minutes=29)).name == "Петрова"  # seen: touched
    assert repo.get(raw, now + timedelta(minutes=58)) is not None  # 29 min after last seen
    assert repo.get(raw, now + timedelta(minutes=89)) is None  # idle for 31 min
    busy = SessionRepository(engine, idle=timedelta(days=1), lifetime=timedelta(hours=12))
    raw2, _ = busy.start(SessionStart(role="operator", name="Петрова"))
    assert busy.get(raw2, now + timedelta(hours=11, minutes=59)) is not None
    assert busy.get(raw2, now + timedelta(hours=12, minutes=1)) is None  # however busy
    assert repo.get("not-a-session") is None and repo.get("") is None
    assert repo.end(raw2) and repo.get(raw2) is None and not repo.end(raw2)
    engine.dispose()


def test_the_sixth_wrong_token_within_a_minute_gets_429(store_url, app_factory, csrf_of, tokens):
    with app_factory(database_url=store_url) as client:
        for n in range(5):
            r = _login(client, csrf_of, f"wrong-token-{n:020d}", name="Иванова")
            assert r.status_code == 403, n
        r = _login(client, csrf_of, "wrong-token-again-0000000", name="Иванова")
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert "Слишком много неудачных попыток входа" in r.text
        # From that address not even the right token is looked at for now.
        assert _login(client, csrf_of, tokens["operator"]).status_code == 429
        elsewhere = TestClient(client.app, follow_redirects=False, client=("10.0.0.8", 50000))
        assert _login(elsewhere, csrf_of, tokens["operator"], "Петрова").status_code == 303
        # The name typed five times is limited from anywhere too...
        third = TestClient(client.app, follow_redirects=False, client=("10.0.0.9", 50000))
        assert _login(third, csrf_of, tokens["operator"], "Иванова").status_code == 429


def test_typing_someones_name_cannot_lock_their_token_out(store_url, app_factory, csrf_of):
    with app_factory(database_url=store_url) as client:
        _, token = _users(client).add("Петрова", "operator")
        for n in range(6):  # someone types her name with wrong tokens, from many addresses
            other = TestClient(client.app, follow_redirects=False, client=(f"10.0.2.{n}", 1))
            r = _login(other, csrf_of, f"wrong-token-{n:020d}", name="Петрова")
            assert r.status_code == (403 if n < 5 else 429)
        own = TestClient(client.app, follow_redirects=False, client=("10.0.3.1", 50000))
        assert _login(own, csrf_of, token).status_code == 303  # her token needs no name
        # Guesses that begin as her token does are counted against her account, though.
        for n in range(5):
            other = TestClient(client.app, follow_redirects=False, client=(f"10.0.4.{n}", 1))
            assert _login(other, csrf_of, token[:8] + "x" * 35).status_code == 403
        late = TestClient(client.app, follow_redirects=False, client=("10.0.5.1", 50000))
        assert _login(late, csrf_of, token).status_code == 429


def test_after_a_wrong_token_the_token_field_has_focus_and_is_marked_invalid(console, csrf_of):
    r = _login(console, csrf_of, "wrong-token-000000000000000", name="Иванова")
    assert r.status_code == 403
    token_input = re.search(r'<input id="token"[^>]*>', r.text).group(0)
    assert re.search(
        r'\sautofocus\s+aria-invalid="true"\s+aria-describedby="login-error"', token_input
    )
    assert "autofocusaria" not in r.text
    name_input = re.search(r'<input id="name"[^>]*>', r.text).group(0)
    assert "autofocus" not in name_input
    first = console.get("/console/login").text
    assert "autofocus" in re.search(r'<input id="name"[^>]*>', first).group(0)


def test_accounts_alone_open_the_console(store_url, app_factory, csrf_of):
    with app_factory(database_url=store_url, operator_token=None, admin_token=None) as client:
        assert "Консоль выключена" in client.get("/console/login").text
        _, token = _users(client).add("Петрова", "operator")
        assert _login(client, csrf_of, token).status_code == 303
        assert "Петрова · оператор" in client.get("/console/").text
        _users(client).revoke("Петрова")
        assert client.get("/console/").status_code == 403  # no one left to sign in
