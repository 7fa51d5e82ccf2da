"""Personal accounts on the JSON API (SQLite and PostgreSQL): tokens by role, the author of a
correction, revocation, environment tokens as before, limits on failed bearer checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from corrections_support import ADMIN, OP, predict
from fastapi.testclient import TestClient

from cur_ml.auth.limits import AuthLimiter
from cur_ml.store import make_engine, upgrade
from cur_ml.store.auth_failures import FailureLog
from cur_ml.store.users import UserRepository

APPEAL = {"text": "Во дворе не вывозят мусор, баки переполнены", "district": "Невский"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _accounts(client: TestClient) -> UserRepository:
    return UserRepository(client.app.state.corrections.engine)


def _from(client: TestClient, address: str) -> TestClient:
    """Another caller of the same running app, from `address`."""
    return TestClient(client.app, client=(address, 50000))


def test_personal_tokens_open_the_routes_of_their_role(store_url, app_on):
    with app_on(database_url=store_url) as client:
        users = _accounts(client)
        _, op = users.add("Петрова", "operator")
        _, adm = users.add("Сидоров", "admin")
        assert len(op) == 43 and users.get("Петрова").token_hash.startswith("$argon2id$")
        assert op not in users.get("Петрова").token_hash  # only a hash is kept
        assert client.get("/v1/review-queue", headers=_bearer(op)).status_code == 200
        r = client.get("/v1/admin/labels", headers=_bearer(op))
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert client.get("/v1/admin/labels", headers=_bearer(adm)).status_code == 200
        assert client.get("/v1/review-queue", headers=_bearer(adm)).status_code == 200
        # The environment tokens keep working as they did.
        assert client.get("/v1/review-queue", headers=OP).status_code == 200
        assert client.get("/v1/admin/labels", headers=_bearer(ADMIN)).status_code == 200
        assert client.get("/v1/admin/labels", headers=OP).status_code == 403


def test_the_author_of_a_correction_is_the_signed_in_account(store_url, app_on):
    with app_on(database_url=store_url) as client:
        _, op = _accounts(client).add("Петрова", "operator")
        pid = predict(client, [APPEAL])[0]["prediction_id"]
        item = {"prediction_id": pid, "field": "urgency", "value": "high"}

        r = client.post("/v1/corrections", json={"corrections": [item]}, headers=_bearer(op))
        assert r.status_code == 201, r.text
        assert r.json()["corrections"][0]["operator"] == "Петрова"
        same = {**item, "value": "low", "operator": "Петрова"}
        r = client.post("/v1/corrections", json={"corrections": [same]}, headers=_bearer(op))
        assert r.status_code == 201 and r.json()["corrections"][0]["operator"] == "Петрова"

        other = {**item, "value": "medium", "operator": "Иванова"}
        r = client.post("/v1/corrections", json={"corrections": [other]}, headers=_bearer(op))
        assert r.status_code == 422
        [problem] = r.json()["detail"]
        assert problem["field"] == "corrections[0].operator"
        assert "Петрова" in problem["problem"]
        history = client.get("/v1/corrections", params={"prediction_id": pid}, headers=OP)
        assert [c["value"] for c in history.json()["corrections"]] == ["high", "low"]

        # A shared (environment) token names nobody: the body's operator, as before.
        r = client.post("/v1/corrections", json={"corrections": [other]}, headers=OP)
        assert r.status_code == 201 and r.json()["corrections"][0]["operator"] == "Иванова"


def test_a_personal_admin_approves_labels_as_themselves(store_url, app_on):
    with app_on(database_url=store_url) as client:
        _, adm = _accounts(client).add("Сидоров", "admin")
        body = {"field": "agency", "label": "Новое ведомство", "approved_by": "кто-то"}
        r = client.post("/v1/admin/labels", json=body, headers=_bearer(adm))
        assert r.status_code == 201 and r.json()["approved_by"] == "Сидоров"


def test_revoking_an_account_stops_its_token_at_once(store_url, app_on):
    with app_on(database_url=store_url) as client:
        users = _accounts(client)
        _, op = users.add("Петрова", "operator")
        assert client.get("/v1/review-queue", headers=_bearer(op)).status_code == 200
        users.revoke("Петрова")
        r = client.get("/v1/review-queue", headers=_bearer(op))
        assert r.status_code == 403 and r.json()["error"] == "forbidden"


def test_with_no_environment_tokens_accounts_alone_open_the_routes(store_url, app_on):
    with app_on(database_url=store_url, operator_token=None, admin_token=None) as client:
        r = client.get("/v1/review-queue", headers=OP)
        assert r.status_code == 403 and r.json()["error"] == "route_disabled"
        _, op = _accounts(client).add("Петрова", "operator")
        assert client.get("/v1/review-queue").status_code == 401
        assert client.get("/v1/review-queue", headers=_bearer(op)).status_code == 200
        r = client.get("/v1/admin/labels", headers=_bearer(op))
        assert r.json()["error"] == "route_disabled"  # no admin anywhere yet


def test_the_sixth_wrong_token_of_an_address_gets_429_and_others_are_not_slowed(store_url, app_on):
    with app_on(database_url=store_url) as client:
        _, op = _accounts(client).add("Петрова", "operator")
        attacker, colleague = _from(client, "10.0.0.66"), _from(client, "10.0.0.7")
        for _ in range(40):  # successes are never counted
            assert colleague.get("/v1/review-queue", headers=_bearer(op)).status_code == 200
        for n in range(5):
            r = attacker.get("/v1/review-queue", headers=_bearer(f"wrong-token-{n:020d}"))
            assert r.status_code == 403, n
        r = attacker.get("/v1/review-queue", headers=_bearer("wrong-token-again-0000000"))
        assert r.status_code == 429
        assert r.json()["error"] == "too_many_failures"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        # Blocked: not even a right token is looked at from that address...
        assert attacker.get("/v1/review-queue", headers=OP).status_code == 429
        # ...while everyone else goes on.
        assert colleague.get("/v1/review-queue", headers=_bearer(op)).status_code == 200
        assert client.get("/v1/review-queue", headers=OP).status_code == 200
        assert FailureLog(client.app.state.corrections.engine, timedelta(minutes=1)).count() == 5


def test_wrong_tokens_for_one_account_are_limited_from_any_address(store_url, app_on):
    with app_on(database_url=store_url) as client:
        _, op = _accounts(client).add("Петрова", "operator")
        guess = op[:8] + "x" * 35  # her token's first characters, the rest guessed
        for n in range(5):
            r = _from(client, f"10.0.1.{n}").get("/v1/review-queue", headers=_bearer(guess))
            assert r.status_code == 403
        r = _from(client, "10.0.1.99").get("/v1/review-queue", headers=_bearer(guess))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_the_failure_window_slides():
    """Limit 3 a minute: the 4th inside the window goes over; the block lasts until the
    oldest failures leave the window, and failures older than the window are forgotten."""
    engine = make_engine("sqlite://")
    upgrade(engine)
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    wall, mono = [t0], [1000.0]
    limiter = AuthLimiter(
        FailureLog(engine, timedelta(minutes=1)),
        limit=3,
        window=timedelta(minutes=1),
        clock=lambda: mono[0],
        wall=lambda: wall[0],
    )

    def fail_at(seconds: float) -> int | None:
        wall[0], mono[0] = t0 + timedelta(seconds=seconds), 1000.0 + seconds
        return limiter.failed(["addr:1.2.3.4"])

    assert [fail_at(0), fail_at(10)] == [None, None]
    assert limiter.blocked(["addr:1.2.3.4"]) is None
    assert fail_at(20) is None  # the 3rd is answered as a failure...
    assert limiter.blocked(["addr:1.2.3.4"]) == 40  # ...and blocks until 0 s + 60 s
    assert limiter.blocked(["addr:5.6.7.8"]) is None
    assert fail_at(30) == 40  # over the limit: 429, until 10 s + 60 s
    mono[0] = 1000.0 + 71
    assert limiter.blocked(["addr:1.2.3.4"]) is None
    assert fail_at(200) is None  # the old ones left the window (and the store)
    assert FailureLog(engine, timedelta(minutes=1)).count() == 1
    engine.dispose()
