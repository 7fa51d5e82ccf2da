"""Roles and tokens: predict / operator / admin, `Authorization: Bearer TOKEN` (CONTRACT 3)."""

from __future__ import annotations

import pytest
from fastapi import Depends

from cur_ml.api.deps import require
from cur_ml.api.main import create_app

BODY = {"appeals": [{"text": "Не горит фонарь во дворе"}]}
#: Tokens of 24 characters or more (shorter ones are refused at start).
PREDICT = "p-secret-0123456789abcdefgh"
OPERATOR = "o-secret-0123456789abcdefgh"
ADMIN = "a-secret-0123456789abcdefgh"
TOKENS = {"predict_token": PREDICT, "operator_token": OPERATOR, "admin_token": ADMIN}


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory, model_a_dir, settings_for):
    from fastapi.testclient import TestClient

    settings = settings_for(tmp_path_factory.mktemp("auth"), model_a_dir, **TOKENS)
    app = create_app(settings)
    # The corrections router (next issue) will use the operator role; check it here already.
    app.add_api_route(
        "/test/operator", lambda: {"ok": True}, dependencies=[Depends(require("operator"))]
    )
    with TestClient(app) as client:
        app.state.slot.load()
        yield client


# (method, path, token, expected status, expected error code)
CASES = [
    ("POST", "/v1/predict", None, 401, "unauthorized"),
    ("POST", "/v1/predict", "wrong", 403, "forbidden"),
    ("POST", "/v1/predict", OPERATOR, 403, "forbidden"),
    ("POST", "/v1/predict", PREDICT, 200, None),
    ("POST", "/v1/predict", ADMIN, 200, None),
    ("GET", "/v1/model", None, 401, "unauthorized"),
    ("GET", "/v1/model", PREDICT, 200, None),
    ("GET", "/test/operator", None, 401, "unauthorized"),
    ("GET", "/test/operator", PREDICT, 403, "forbidden"),
    ("GET", "/test/operator", OPERATOR, 200, None),
    ("GET", "/test/operator", ADMIN, 200, None),
    ("POST", "/v1/admin/reload", None, 401, "unauthorized"),
    ("POST", "/v1/admin/reload", PREDICT, 403, "forbidden"),
    ("POST", "/v1/admin/reload", OPERATOR, 403, "forbidden"),
    ("POST", "/v1/admin/reload", ADMIN + "-but-longer", 403, "forbidden"),
    ("POST", "/v1/admin/reload", ADMIN, 200, None),
    ("GET", "/healthz", None, 200, None),
    ("GET", "/readyz", None, 200, None),
    ("GET", "/metrics", None, 200, None),
]


@pytest.mark.parametrize(("method", "path", "token", "status", "error"), CASES)
def test_roles(secured, method, path, token, status, error):
    r = secured.request(
        method, path, headers=bearer(token), json=BODY if method == "POST" else None
    )
    assert r.status_code == status, r.text
    if error:
        body = r.json()
        assert body["error"] == error
        assert body["message"] and body["request_id"]
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [
        "Basic cC1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZmdoOg==",
        "Bearer",
        "bearer",
        PREDICT,
        f"Token {PREDICT}",
        "Bearer  ",
    ],
)
def test_malformed_authorization_is_401(secured, header):
    r = secured.post("/v1/predict", json=BODY, headers={"Authorization": header})
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"


def test_non_ascii_token_is_rejected_cleanly(secured):
    r = secured.post("/v1/predict", json=BODY, headers={"Authorization": "Bearer пароль".encode()})
    assert r.status_code == 403


def test_auth_is_checked_before_the_body(secured):
    r = secured.post("/v1/predict", json={"appeals": []})
    assert r.status_code == 401


def test_without_tokens_predict_is_open_and_admin_never(app_factory, model_a_dir):
    with app_factory(model_a_dir) as client:
        assert client.post("/v1/predict", json=BODY).status_code == 200
        for token in (None, "", "anything", "None"):
            r = client.post("/v1/admin/reload", headers=bearer(token))
            assert r.status_code in (401, 403), r.text
            assert r.status_code == 403 and r.json()["error"] == "route_disabled"


def test_empty_tokens_count_as_unset(app_factory, model_a_dir):
    with app_factory(model_a_dir, predict_token="", admin_token="") as client:
        assert client.post("/v1/predict", json=BODY).status_code == 200
        r = client.post("/v1/admin/reload", headers=bearer(""))
        assert r.status_code == 403 and r.json()["error"] == "route_disabled"


def test_admin_token_alone_keeps_predict_open(app_factory, model_a_dir):
    with app_factory(model_a_dir, admin_token=ADMIN) as client:
        assert client.post("/v1/predict", json=BODY).status_code == 200
        assert client.post("/v1/admin/reload", headers=bearer(ADMIN)).status_code == 200
