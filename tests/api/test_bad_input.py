"""Bad input answers 4xx with a JSON body naming the field, never 5xx (CONTRACT section 3)."""

from __future__ import annotations

import json

import pytest


def dumps(obj) -> bytes:
    return json.dumps(obj).encode()


def appeal(**fields) -> bytes:
    return dumps({"appeals": [fields]})


# (case, raw body, expected status, field named in `detail`)
CASES = [
    ("malformed JSON", b'{"appeals": [', 422, "body"),
    ("trailing garbage", b'{"appeals": [{"text": "x"}]} xyz', 422, "body"),
    ("empty body", b"", 422, "body"),
    ("JSON null", b"null", 422, "body"),
    ("JSON list", b'[{"text": "x"}]', 422, "body"),
    ("JSON string", b'"text"', 422, "body"),
    ("no appeals key", dumps({"text": "x"}), 422, "appeals"),
    ("appeals null", dumps({"appeals": None}), 422, "appeals"),
    ("appeals a string", dumps({"appeals": "Яма на дороге"}), 422, "appeals"),
    ("appeals an object", dumps({"appeals": {"text": "x"}}), 422, "appeals"),
    ("empty batch", dumps({"appeals": []}), 422, "appeals"),
    ("batch over limit", dumps({"appeals": [{"text": "x"}] * 1001}), 422, "appeals"),
    ("appeal null", dumps({"appeals": [None]}), 422, "appeals[0]"),
    ("appeal a string", dumps({"appeals": ["Яма"]}), 422, "appeals[0]"),
    ("appeal a list", dumps({"appeals": [["Яма"]]}), 422, "appeals[0]"),
    ("text missing", appeal(id=1), 422, "appeals[0].text"),
    ("text null", appeal(text=None), 422, "appeals[0].text"),
    ("text a number", appeal(text=123), 422, "appeals[0].text"),
    ("text a list", appeal(text=["a", "b"]), 422, "appeals[0].text"),
    ("text an object", appeal(text={"ru": "Яма"}), 422, "appeals[0].text"),
    ("text over limit", appeal(text="я" * 20_001), 422, "appeals[0].text"),
    (
        "second appeal bad",
        dumps({"appeals": [{"text": "Яма"}, {"text": False}]}),
        422,
        "appeals[1].text",
    ),
    ("lone surrogate", b'{"appeals": [{"text": "\\ud800 x"}]}', 422, "appeals[0].text"),
    (
        "surrogate in district",
        b'{"appeals": [{"text": "x", "district": "\\udfff"}]}',
        422,
        "appeals[0].district",
    ),
    ("non-UTF-8 bytes", b'{"appeals": [{"text": "\xff\xfe\xfa"}]}', 400, "body"),
    ("UTF-16 body", '{"appeals": [{"text": "Яма"}]}'.encode("utf-16"), 200, None),
    ("lat huge", b'{"appeals": [{"text": "x", "lat": 1e400}]}', 422, "appeals[0].lat"),
    ("lat NaN", b'{"appeals": [{"text": "x", "lat": NaN}]}', 422, "appeals[0].lat"),
    ("lon -Infinity", b'{"appeals": [{"text": "x", "lon": -Infinity}]}', 422, "appeals[0].lon"),
    ("lat out of range", appeal(text="x", lat=1000.5), 422, "appeals[0].lat"),
    ("lon out of range", appeal(text="x", lon=-181), 422, "appeals[0].lon"),
    ("lat a word", appeal(text="x", lat="север"), 422, "appeals[0].lat"),
    ("lat a list", appeal(text="x", lat=[59.9]), 422, "appeals[0].lat"),
    (
        "lat 400-digit integer",
        b'{"appeals": [{"text": "x", "lat": 1' + b"0" * 400 + b"}]}",
        422,
        "appeals[0].lat",
    ),
    (
        "lat 5000-digit integer",
        b'{"appeals": [{"text": "x", "lat": ' + b"9" * 5000 + b"}]}",
        400,
        "body",
    ),
    ("id a float", appeal(text="x", id=1.5), 422, "appeals[0].id"),
    ("id a bool", appeal(text="x", id=True), 422, "appeals[0].id"),
    ("id a list", appeal(text="x", id=[1]), 422, "appeals[0].id"),
    ("id beyond int64", appeal(text="x", id=2**70), 422, "appeals[0].id"),
    ("id too long", appeal(text="x", id="z" * 300), 422, "appeals[0].id"),
    ("created_at not a date", appeal(text="x", created_at="вчера"), 422, "appeals[0].created_at"),
    ("created_at a number", appeal(text="x", created_at=1715678400), 422, "appeals[0].created_at"),
    (
        "created_at year 9999",
        appeal(text="x", created_at="9999-12-31T23:59:59"),
        422,
        "appeals[0].created_at",
    ),
    ("created_at year 1", appeal(text="x", created_at="0001-01-01"), 422, "appeals[0].created_at"),
    ("district a number", appeal(text="x", district=7), 422, "appeals[0].district"),
    ("source an object", appeal(text="x", source={"a": 1}), 422, "appeals[0].source"),
    ("address too long", appeal(text="x", address="д" * 1001), 422, "appeals[0].address"),
    (
        "deep nesting",
        b'{"appeals": [{"text": "x", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
        400,
        "body",
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_4xx_naming_the_field(client, case, body, status, field):
    r = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    if field is None:
        return
    payload = r.json()
    assert payload["error"] in ("invalid_request", "bad_request")
    fields = [d["field"] for d in payload["detail"]]
    assert field in fields, payload
    assert all(d["problem"] for d in payload["detail"])
    assert field in payload["message"] or field == "body"
    assert payload["request_id"] == r.headers["x-request-id"]


def test_all_problems_of_a_batch_are_listed(client):
    body = {"appeals": [{"text": "ok"}, {}, {"text": 5, "lat": "x"}, {"text": "y" * 20_001}]}
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["detail"]}
    assert {"appeals[1].text", "appeals[2].text", "appeals[2].lat"} <= fields


def test_text_at_the_limit_is_accepted(client):
    r = client.post("/v1/predict", json={"appeals": [{"text": "Яма на дороге. " * 1333}]})
    assert r.status_code == 200, r.text


def test_limits_follow_the_settings(app_factory, model_a_dir):
    with app_factory(model_a_dir, max_batch=3, max_text_chars=10) as client:
        r = client.post("/v1/predict", json={"appeals": [{"text": "x"}] * 4})
        assert r.status_code == 422 and "limit is 3" in r.json()["message"]
        r = client.post("/v1/predict", json={"appeals": [{"text": "12345678901"}]})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "appeals[0].text"
        assert client.post("/v1/predict", json={"appeals": [{"text": "x"}] * 3}).status_code == 200


def test_characters_of_one_request_are_capped(app_factory, model_a_dir):
    with app_factory(model_a_dir, max_request_chars=100) as client:
        r = client.post("/v1/predict", json={"appeals": [{"text": "Яма на дороге " * 5}] * 2})
        assert r.status_code == 422, r.text
        body = r.json()
        assert "limit is 100" in body["message"] and "CUR_ML_MAX_REQUEST_CHARS" in body["message"]
        assert body["detail"][0]["field"] == "appeals"
        # The same appeals in two requests are fine.
        r = client.post("/v1/predict", json={"appeals": [{"text": "Яма на дороге " * 5}]})
        assert r.status_code == 200, r.text


def test_body_over_the_size_limit_is_413(app_factory, model_a_dir):
    with app_factory(model_a_dir, max_body_bytes=1_000) as client:
        r = client.post("/v1/predict", json={"appeals": [{"text": "я" * 2_000}]})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

        def chunks():  # no Content-Length: counted while read
            yield b'{"appeals": [{"text": "'
            yield b"x" * 2_000
            yield b'"}]}'

        r = client.post("/v1/predict", content=chunks())
        assert r.status_code == 413, r.text


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("text/plain", 422), ("application/x-www-form-urlencoded", 422), (None, 200)],
)
def test_content_type(client, content_type, status):
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/v1/predict", content=appeal(text="Яма"), headers=headers)
    assert r.status_code == status, r.text
    if status == 422:
        assert "Content-Type: application/json" in r.json()["detail"][0]["problem"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/predict", 405), ("POST", "/v1/nothing", 404), ("DELETE", "/healthz", 405)],
)
def test_wrong_route_or_method_is_json(client, method, path, status):
    r = client.request(method, path)
    assert r.status_code == status
    assert r.json()["error"] in ("not_found", "method_not_allowed")


def test_bad_query_parameter_names_it(client):
    r = client.post("/v1/predict?explain=perhaps", json={"appeals": [{"text": "Яма"}]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "explain"


def test_an_oversized_batch_is_refused_before_its_appeals_are_checked(client):
    r = client.post("/v1/predict", json={"appeals": [{}] * 100_000})
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"field": "appeals", "problem": "100000 appeals; the limit is 1000"}
    ]
