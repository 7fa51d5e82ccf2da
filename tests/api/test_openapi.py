"""The OpenAPI document is what the service does, for the configuration it was served under:
errors as sent, parameter types as enforced, security as configured, methods as routed."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from cur_ml.api.fields import APPEAL_TIME_PATTERN
from cur_ml.api.main import create_app

PREDICT = "predict-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
ALL_TOKENS = {"predict_token": PREDICT, "operator_token": OPERATOR, "admin_token": ADMIN}
ERROR = {"$ref": "#/components/schemas/ErrorBody"}
#: 409 `stale_version` of a correction: an ErrorBody with the changes it missed.
STALE = {"$ref": "#/components/schemas/StaleVersionBody"}


def document(settings) -> dict:
    """The document an app of `settings` serves (no start needed: nothing is loaded)."""
    return TestClient(create_app(settings)).get("/openapi.json").json()


def operations(doc: dict):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield path, method, op


@pytest.fixture(scope="module")
def secured(tmp_path_factory, model_a_dir, settings_for) -> dict:
    return document(settings_for(tmp_path_factory.mktemp("doc"), model_a_dir, **ALL_TOKENS))


def test_errors_are_documented_as_they_are_sent(secured):
    """No FastAPI `HTTPValidationError` anywhere: every 4xx/5xx is an `ErrorBody`, and every
    operation that reads a body or parameters documents 422 (and 400, 413 for a body)."""
    assert "HTTPValidationError" not in str(secured)
    error = secured["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"error", "message", "detail", "request_id"}
    stale = secured["components"]["schemas"]["StaleVersionBody"]
    assert set(stale["properties"]) == {"error", "message", "detail", "request_id", "changes"}
    problem = secured["components"]["schemas"]["FieldProblem"]
    assert set(problem["properties"]) == {"field", "problem"}
    for path, method, op in operations(secured):
        codes = set(op["responses"])
        if op.get("parameters") or "requestBody" in op:
            assert "422" in codes, (method, path)
        if "requestBody" in op:
            assert {"400", "413"} <= codes, (method, path)
        for code, answer in op["responses"].items():
            if code[0] in "45" and path != "/readyz":
                schema = answer["content"]["application/json"]["schema"]
                stale = code == "409" and "corrections" in path
                assert schema == (STALE if stale else ERROR), (path, code)


def test_security_follows_the_tokens_configured(secured, tmp_path, model_a_dir, settings_for):
    """With every token set each role's routes need a bearer (and may answer 429 when
    failed checks pile up); without a predict token predict and the model are documented
    open; without operator/admin tokens their routes still need a bearer (a personal
    account's), and say that they are off while no account has the role."""
    for path, method, op in operations(secured):
        if path in ("/healthz", "/readyz", "/metrics"):
            assert "security" not in op, path  # /metrics is open on loopback
            continue
        assert op["security"] == [{"HTTPBearer": []}], (method, path)
        assert {"401", "403", "429", "503"} <= set(op["responses"]), (method, path)

    open_doc = document(settings_for(tmp_path, model_a_dir))  # no token at all
    for path, method, op in operations(open_doc):
        if path in ("/healthz", "/readyz", "/metrics", "/v1/predict", "/v1/model", "/v1/regions"):
            assert "security" not in op, (method, path)
            assert not {"401", "403"} & set(op["responses"]), path
        else:
            assert op["security"] == [{"HTTPBearer": []}], (method, path)
            assert {"401", "403"} <= set(op["responses"]), path
            assert "cur-ml users add" in op["description"], path
    assert "токен не нужен" in open_doc["paths"]["/v1/predict"]["post"]["description"]

    locked = document(settings_for(tmp_path, model_a_dir, metrics_require_token=True))
    metrics = locked["paths"]["/metrics"]["get"]
    assert (
        "security" not in metrics and "route_disabled" in metrics["responses"]["403"]["description"]
    )


def test_answers_without_a_token_match_the_document(tmp_path, model_a_dir, settings_for, start):
    """What the document promises, the service does: documented-open routes answer without
    a token, documented-secured ones answer 401."""
    with start(settings_for(tmp_path, model_a_dir, operator_token=OPERATOR)) as client:
        doc = client.get("/openapi.json").json()
        assert "security" not in doc["paths"]["/v1/model"]["get"]
        assert client.get("/v1/model").status_code == 200
        assert doc["paths"]["/v1/review-queue"]["get"]["security"]
        assert client.get("/v1/review-queue").status_code == 401


def test_times_in_queries_are_iso_8601_as_documented(secured, tmp_path, model_a_dir, settings_for):
    """`since`/`until` are documented `format: date-time`; a number (which pydantic alone
    takes for a Unix time) or any other text is a 422 naming the parameter."""
    settings = settings_for(tmp_path, model_a_dir, **ALL_TOKENS)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(create_app(settings)) as client:  # the lifespan opens the store
        for path in ("/v1/corrections", "/v1/review-queue"):
            for name in ("since", "until"):
                params = secured["paths"][path]["get"]["parameters"]
                (schema,) = [p["schema"] for p in params if p["name"] == name]
                assert {"type": "string", "format": "date-time"} in schema["anyOf"]
                for value in ("0.5", "1715678400", "yesterday", "2024-13-01T00:00:00Z"):
                    r = client.get(path, params={name: value}, headers=auth)
                    assert r.status_code == 422, (path, name, value, r.text)
                    assert [d["field"] for d in r.json()["detail"]] == [name]
                r = client.get(path, params={name: "2024-05-14T09:30:00+03:00"}, headers=auth)
                assert r.status_code == 200, r.text


# created_at: documented RFC 3339 in 1900-2200; what the pattern admits, the service takes
CREATED_AT = [
    ("2024-05-14T09:30:00+03:00", True, 200),
    ("2024-05-14T09:30:00.123456Z", True, 200),
    ("1900-01-01T00:00:00-23:59", True, 200),
    ("2200-12-31T23:59:59Z", True, 200),
    ("2024-05-14", False, 200),  # ISO 8601 beyond RFC 3339: accepted, not promised
    ("2024-05-14 09:30:00", False, 200),
    ("1899-12-31T23:59:59Z", False, 422),
    ("2201-01-01T00:00:00Z", False, 422),
    ("вчера", False, 422),
    ("0.5", False, 422),
]


@pytest.mark.parametrize(("value", "documented", "status"), CREATED_AT)
def test_created_at_is_documented_as_a_date_time(secured, client, value, documented, status):
    schema = secured["components"]["schemas"]["Appeal"]["properties"]["created_at"]
    (string,) = [s for s in schema["anyOf"] if s.get("type") == "string"]
    assert string["format"] == "date-time" and string["pattern"] == APPEAL_TIME_PATTERN
    assert bool(re.fullmatch(APPEAL_TIME_PATTERN, value)) is documented
    r = client.post("/v1/predict", json={"appeals": [{"text": "Яма", "created_at": value}]})
    assert r.status_code == status, r.text


def test_limits_of_the_configuration_are_documented(tmp_path, model_a_dir, settings_for):
    doc = document(settings_for(tmp_path, model_a_dir, max_batch=7, max_text_chars=123))
    schemas = doc["components"]["schemas"]
    assert schemas["PredictRequest"]["properties"]["appeals"]["maxItems"] == 7
    assert schemas["Appeal"]["properties"]["text"]["maxLength"] == 123


def test_405_names_every_method_of_the_path(secured, client):
    """`Allow` lists the methods documented for the path (OPTIONS of /v1/admin/retrain once
    answered `Allow: POST` though GET is documented too)."""
    for path, ops in secured["paths"].items():
        concrete = path.replace("{prediction_id}", "x").replace("{run_id}", "x")
        r = client.options(concrete)
        assert r.status_code == 405, (path, r.text)
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert allowed == {m.upper() for m in ops}, (path, r.headers["allow"])
        assert r.json()["error"] == "method_not_allowed"
    r = client.delete("/v1/admin/retrain")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
