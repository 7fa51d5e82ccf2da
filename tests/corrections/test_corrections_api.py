"""`POST/GET /v1/corrections` and `GET /v1/predictions/{id}`: contract, validation, idempotency,
history, latest wins; on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from corrections_support import ADM, OP, predict
from sqlalchemy import func, select

from cur_ml.store.corrections import CorrectionRecord

APPEALS = [
    {"id": "a1", "text": "Во дворе не вывозят мусор, баки переполнены", "district": "Невский"},
    {"id": 2, "text": "На остановке не горит фонарь", "source": "vk"},
    {"id": "a3", "text": "Течёт крыша, вода в квартире"},
]
AGENCY = "СПб ГКУ ЖА Невского района"
#: Labels of the demo model (corrections may carry only labels the served model knows).
LABELS = {
    "category": ["Благоустройство", "Кровля", "Фасад", "Подвалы", "Водоснабжение"],
    "agency": [
        AGENCY,
        "Администрация Невского района",
        "Комитет по транспорту",
        "СПб ГБУ «Ленсвет»",
    ],
    "urgency": ["high", "medium", "low"],
}


def _stored(client) -> int:
    with client.app.state.corrections.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(CorrectionRecord))


def _post(client, *items, headers=OP):
    return client.post("/v1/corrections", json={"corrections": list(items)}, headers=headers)


@pytest.fixture
def served(app_on, store_url):
    """(client, predictions of APPEALS) on a fresh store of each kind."""
    with app_on(database_url=store_url) as client:
        yield client, predict(client, APPEALS)


def test_a_correction_is_stored_with_the_value_in_force_before(served):
    client, preds = served
    p = preds[0]
    urgency = next(u for u in ("high", "medium", "low") if u != p["urgency"])
    r = _post(
        client,
        {"prediction_id": p["prediction_id"], "field": "urgency", "value": urgency},
        {
            "prediction_id": preds[1]["prediction_id"],
            "field": "agency",
            "value": "  СПб ГКУ ЖА Невского района ",
            "operator": "ivanova",
            "comment": "дом обслуживает ЖА",
            "idempotency_key": "k-1",
        },
    )
    assert r.status_code == 201, r.text
    first, second = r.json()["corrections"]
    assert first["created"] and second["created"]
    assert first["prediction_id"] == p["prediction_id"] and first["field"] == "urgency"
    assert (first["old_value"], first["value"], first["operator"]) == (
        p["urgency"],
        urgency,
        "operator",
    )
    assert first["source"] == "api" and first["idempotency_key"]  # made up when not sent
    assert second == {
        **second,
        "old_value": preds[1]["agency"],
        "value": "СПб ГКУ ЖА Невского района",
        "operator": "ivanova",
        "comment": "дом обслуживает ЖА",
        "idempotency_key": "k-1",
    }
    assert datetime.fromisoformat(second["at"]).tzinfo is not None
    assert second["id"] > first["id"]
    assert _stored(client) == 2


def test_the_same_idempotency_key_stores_once(served):
    client, preds = served
    item = {
        "prediction_id": preds[0]["prediction_id"],
        "field": "category",
        "value": "Благоустройство",
        "idempotency_key": "op7-0001",
    }
    first = _post(client, item)
    again = _post(client, {**item, "operator": "someone else"})
    assert (first.status_code, again.status_code) == (201, 200)
    a, b = first.json()["corrections"][0], again.json()["corrections"][0]
    assert (a["created"], b["created"]) == (True, False)
    assert {k: v for k, v in a.items() if k != "created"} == {
        k: v for k, v in b.items() if k != "created"
    }
    mixed = _post(client, item, {**item, "idempotency_key": "op7-0002", "value": "Кровля"})
    assert mixed.status_code == 201
    assert [c["created"] for c in mixed.json()["corrections"]] == [False, True]
    twice = _post(client, *[{**item, "idempotency_key": "op7-0003"}] * 2)  # one key twice
    assert [c["created"] for c in twice.json()["corrections"]] == [True, False]
    assert len({c["id"] for c in twice.json()["corrections"]}) == 1
    assert _stored(client) == 3


def test_a_key_reused_for_another_correction_is_refused_and_nothing_is_stored(served):
    client, preds = served
    pid = preds[0]["prediction_id"]
    assert (
        _post(
            client,
            {"prediction_id": pid, "field": "category", "value": "Кровля", "idempotency_key": "k"},
        ).status_code
        == 201
    )
    r = _post(
        client,
        {"prediction_id": pid, "field": "agency", "value": AGENCY, "idempotency_key": "new"},
        {"prediction_id": pid, "field": "category", "value": "Фасад", "idempotency_key": "k"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "corrections[1].idempotency_key"
    assert _stored(client) == 1  # the whole request or nothing


def test_an_unknown_prediction_is_named_and_the_request_stores_nothing(served):
    client, preds = served
    r = _post(
        client,
        {"prediction_id": preds[0]["prediction_id"], "field": "category", "value": "Кровля"},
        {
            "prediction_id": "00000000-0000-4000-8000-000000000000",
            "field": "urgency",
            "value": "low",
        },
    )
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["detail"] == [
        {
            "field": "corrections[1].prediction_id",
            "problem": "unknown prediction_id: no such prediction served",
        }
    ]
    assert _stored(client) == 0


LONG = "я" * 513


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"field": "urgency", "value": "urgent"}, "corrections[0].value"),
        ({"field": "urgency", "value": "High"}, "corrections[0].value"),
        ({"field": "reason", "value": "   "}, "corrections[0].value"),
        ({"field": "reason", "value": ""}, "corrections[0].value"),
        ({"field": "reason", "value": LONG}, "corrections[0].value"),
        ({"field": "reason", "value": 5}, "corrections[0].value"),
        ({"field": "reason", "value": "a\x00b"}, "corrections[0].value"),
        ({"field": "deadline_days", "value": "3"}, "corrections[0].field"),
        ({"value": "x"}, "corrections[0].field"),
        ({"field": "reason"}, "corrections[0].value"),
        ({"field": "reason", "value": "x", "prediction_id": None}, "corrections[0].prediction_id"),
        (
            {"field": "reason", "value": "x", "idempotency_key": ""},
            "corrections[0].idempotency_key",
        ),
        ({"field": "reason", "value": "x", "operator": "o" * 129}, "corrections[0].operator"),
    ],
)
def test_invalid_items_are_named(client_a, item, field):
    client, pid = client_a
    r = _post(client, {"prediction_id": pid, **item})
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["detail"]] == [field]
    assert r.json()["request_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"corrections": []}, "corrections"),
        ({}, "corrections"),
        ({"corrections": "x"}, "corrections"),
        ([], "body"),
    ],
)
def test_invalid_bodies_are_named(client_a, body, field):
    client, _pid = client_a
    r = client.post("/v1/corrections", json=body, headers=OP)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == field


def test_at_most_1000_corrections_per_request(client_a):
    client, pid = client_a
    item = {"prediction_id": pid, "field": "category", "value": "Кровля"}
    r = client.post("/v1/corrections", json={"corrections": [item] * 1001}, headers=OP)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "corrections"
    r = client.post("/v1/corrections", json={"corrections": [item] * 1000}, headers=OP)
    assert r.status_code == 201 and len(r.json()["corrections"]) == 1000


def test_not_json_is_a_4xx_naming_the_body(client_a):
    client, _pid = client_a
    r = client.post("/v1/corrections", content=b"{not json", headers=OP)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"


def test_roles(client_a):
    client, pid = client_a
    item = {"prediction_id": pid, "field": "category", "value": "Кровля"}
    assert _post(client, item, headers={}).status_code == 401
    wrong = _post(client, item, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    assert _post(client, item, headers=ADM).status_code == 201  # admin passes operator routes
    assert client.get("/v1/review-queue", headers={}).status_code == 401
    assert client.get(f"/v1/predictions/{pid}", headers={}).status_code == 401
    assert client.get("/v1/corrections", headers={}).status_code == 401
    assert client.post("/v1/admin/retrain", headers=OP).status_code == 403
    assert client.get("/v1/admin/retrain", headers=OP).status_code == 403


def test_operator_routes_are_off_without_an_operator_token(app_on):
    with app_on(operator_token=None, admin_token=None) as client:
        r = client.get("/v1/corrections", headers=OP)
        assert r.status_code == 403 and r.json()["error"] == "route_disabled"


@pytest.fixture(scope="module")
def module_client(tmp_path_factory, model_a_dir):
    from corrections_support import running, settings_for

    tmp = tmp_path_factory.mktemp("corrections")
    with running(settings_for(tmp, model_a_dir)) as client:
        yield client


@pytest.fixture
def client_a(module_client):
    """(client, a fresh prediction_id) on a module-wide app."""
    return module_client, predict(module_client, APPEALS[:1])[0]["prediction_id"]


def test_history_is_oldest_first_and_the_latest_correction_wins(served):
    client, preds = served
    p = preds[2]
    pid = p["prediction_id"]
    for value in ("Кровля", "Фасад"):
        assert (
            _post(client, {"prediction_id": pid, "field": "category", "value": value}).status_code
            == 201
        )
    r = _post(
        client,
        {"prediction_id": pid, "field": "category", "value": "Подвалы"},
        {"prediction_id": pid, "field": "category", "value": "Водоснабжение"},
        {"prediction_id": pid, "field": "urgency", "value": "high"},
    )
    assert [c["old_value"] for c in r.json()["corrections"]] == ["Фасад", "Подвалы", p["urgency"]]
    detail = client.get(f"/v1/predictions/{pid}", headers=OP)
    assert detail.status_code == 200
    body = detail.json()
    assert [c["value"] for c in body["corrections"]] == [
        "Кровля",
        "Фасад",
        "Подвалы",
        "Водоснабжение",
        "high",
    ]
    assert [c["old_value"] for c in body["corrections"]][:2] == [p["category"], "Кровля"]
    assert body["effective"] == {
        "category": "Водоснабжение",
        "reason": p["reason"],
        "urgency": "high",
        "agency": p["agency"],
    }
    assert body["reviewed"] is True
    assert body["prediction"] == p  # the answer as sent
    assert body["appeal"] == APPEALS[2]
    assert body["model_version"] == "test-a"
    untouched = client.get(f"/v1/predictions/{preds[1]['prediction_id']}", headers=OP).json()
    assert untouched["corrections"] == [] and untouched["reviewed"] is False
    assert untouched["effective"] == {
        h: preds[1][h] for h in ("category", "reason", "urgency", "agency")
    }


def test_an_unknown_prediction_is_a_404_json(client_a):
    client, _pid = client_a
    r = client.get("/v1/predictions/00000000-0000-4000-8000-000000000000", headers=OP)
    assert r.status_code == 404
    assert r.json()["error"] == "not_found" and "prediction_id" in r.json()["message"]
    assert client.get(f"/v1/predictions/{'x' * 65}", headers=OP).status_code == 422


def test_a_slow_store_delays_the_answer_never_the_record(app_on):
    """The answer waits for the store: once it arrives, the prediction can be corrected."""
    with app_on() as client:
        repo = client.app.state.writer.repository
        original = repo.add_many

        def slow(rows):  # the store lags behind the model
            time.sleep(0.5)
            original(rows)

        repo.add_many = slow
        started = time.monotonic()
        r = client.post("/v1/predict", json={"appeals": APPEALS[:1]})
        assert r.status_code == 200 and time.monotonic() - started >= 0.5
        pid = r.json()["predictions"][0]["prediction_id"]
        assert client.app.state.predictions.get(pid) is not None  # stored before answered
        c = _post(client, {"prediction_id": pid, "field": "category", "value": "Кровля"})
        assert c.status_code == 201, c.text
        assert client.get(f"/v1/predictions/{pid}", headers=OP).status_code == 200


def test_listing_pages_by_cursor_and_filters(served):
    client, preds = served
    items = []
    for i in range(25):
        p = preds[i % 3]
        field = ("category", "agency", "urgency")[i % 3]
        items.append(
            {
                "prediction_id": p["prediction_id"],
                "field": field,
                "value": LABELS[field][i % len(LABELS[field])],
                "operator": "petrov" if i % 5 == 0 else "ivanova",
            }
        )
    sent = [item["value"] for item in items]
    assert _post(client, *items).status_code == 201
    seen, cursor, pages = [], 0, 0
    while True:
        r = client.get("/v1/corrections", params={"limit": 10, "cursor": cursor}, headers=OP)
        assert r.status_code == 200
        body = r.json()
        seen += body["corrections"]
        pages += 1
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert pages == 3 and [c["value"] for c in seen] == sent
    ids = [c["id"] for c in seen]
    assert ids == sorted(ids) and len(set(ids)) == 25

    def values(**params):
        r = client.get("/v1/corrections", params=params, headers=OP)
        assert r.status_code == 200, r.text
        return [c["value"] for c in r.json()["corrections"]]

    assert values(field="agency") == sent[1::3]
    assert values(operator="petrov") == sent[::5]
    assert values(prediction_id=preds[1]["prediction_id"]) == sent[1::3]
    now = datetime.now(UTC)
    assert len(values(since=(now - timedelta(minutes=5)).isoformat())) == 25
    assert values(since=(now + timedelta(minutes=5)).isoformat()) == []
    assert values(until=(now - timedelta(minutes=5)).isoformat()) == []
    moscow = (now + timedelta(minutes=5)).astimezone(
        __import__("datetime").timezone(timedelta(hours=3))
    )
    assert len(values(until=moscow.isoformat())) == 25  # offsets are honoured
    assert values(cursor=ids[-1]) == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"cursor": -1}, {"field": "x"}, {"since": "вчера"}],
)
def test_listing_refuses_bad_parameters(client_a, params):
    client, _pid = client_a
    r = client.get("/v1/corrections", params=params, headers=OP)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == next(iter(params))


def test_openapi_documents_the_routes_in_russian(client_a):
    client, _pid = client_a
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/v1/corrections", "post"),
        ("/v1/corrections", "get"),
        ("/v1/review-queue", "get"),
        ("/v1/predictions/{prediction_id}", "get"),
        ("/v1/admin/retrain", "post"),
        ("/v1/admin/retrain", "get"),
        ("/v1/admin/retrain/{run_id}", "get"),
        ("/v1/admin/corrections", "post"),
        ("/v1/admin/labels", "post"),
        ("/v1/admin/labels", "get"),
    ]:
        op = paths[path][method]
        assert any("а" <= ch <= "я" for ch in op["summary"].lower()), op["summary"]
        assert "422" in op["responses"] or "404" in op["responses"] or method == "post"
    item = spec["components"]["schemas"]["CorrectionItem"]
    assert item["examples"][0]["field"] == "agency"
    assert "Исправляемое" in item["properties"]["field"]["description"]
    assert set(paths["/v1/corrections"]["post"]["responses"]) >= {"200", "201", "422", "503"}


@pytest.mark.parametrize(
    ("content_type", "status"),
    [(None, 201), ("application/json", 201), ("application/x-www-form-urlencoded", 422)],
)
def test_content_type_as_for_predict(client_a, content_type, status):
    """No Content-Type is read as JSON; a form type is refused with a hint (as /v1/predict)."""
    import json

    client, pid = client_a
    body = json.dumps({"corrections": [{"prediction_id": pid, "field": "urgency", "value": "low"}]})
    headers = {**OP, "Content-Type": content_type} if content_type else OP
    r = client.post("/v1/corrections", content=body.encode(), headers=headers)
    assert r.status_code == status, r.text
    if status == 422:
        assert "Content-Type: application/json" in r.json()["detail"][0]["problem"]


@pytest.mark.parametrize("cursor", [2**63, 10**30])
def test_a_cursor_beyond_64_bits_is_a_client_error(served, cursor):
    client, _ = served
    r = client.get("/v1/corrections", params={"cursor": cursor}, headers=OP)
    assert r.status_code == 422, r.text
    assert any(d["field"].endswith("cursor") for d in r.json()["detail"])
    last = client.get("/v1/corrections", params={"cursor": 2**63 - 1}, headers=OP)
    assert last.status_code == 200 and last.json()["corrections"] == []
