"""Secure defaults: token length, predict open only on loopback unless allowed, `/metrics`
behind a token off loopback, and the headers of every answer."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cur_ml.api.main import create_app
from cur_ml.api.startup import announce_exposure, check_exposure
from cur_ml.errors import StartupError
from cur_ml.settings import MIN_TOKEN_CHARS, TOKEN_SETTINGS, Settings, is_loopback

GOOD = "x" * MIN_TOKEN_CHARS
METRICS = "metrics-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdefgh"
BODY = {"appeals": [{"text": "Не горит фонарь во дворе"}]}


@pytest.mark.parametrize("field", TOKEN_SETTINGS)
def test_a_short_token_is_refused_without_showing_it(field):
    short = "s3cr3t-" + "y" * (MIN_TOKEN_CHARS - 8)  # one character short
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{field: short})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,) and f"at least {MIN_TOKEN_CHARS} characters" in error["msg"]
    assert short not in str(caught.value)
    assert Settings(_env_file=None, **{field: GOOD}).model_dump()[field] is not None


def test_an_empty_token_counts_as_unset():
    assert Settings(_env_file=None, predict_token="", metrics_token="").predict_token is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("service.internal", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "settings", "refused"),
    [
        ("127.0.0.1", {}, False),
        ("0.0.0.0", {}, True),
        ("10.1.2.3", {}, True),
        ("0.0.0.0", {"predict_token": GOOD}, False),
        ("0.0.0.0", {"allow_open_predict": True}, False),
    ],
)
def test_open_predict_off_loopback_is_refused_unless_allowed(host, settings, refused):
    configured = Settings(_env_file=None, host=host, **settings)
    if refused:
        with pytest.raises(StartupError, match="--allow-open-predict"):
            check_exposure(configured)
    else:
        check_exposure(configured)


def test_what_is_open_is_logged_once(caplog):
    log = logging.getLogger("test.exposure")
    with caplog.at_level(logging.INFO, logger="test.exposure"):
        announce_exposure(Settings(_env_file=None), log)
        announce_exposure(Settings(_env_file=None, host="0.0.0.0", allow_open_predict=True), log)
        announce_exposure(Settings(_env_file=None, predict_token=GOOD), log)
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert records[0][0] == "INFO" and "predict is open" in records[0][1]
    # off loopback: predict open (warned), /metrics wants a token nobody has (warned)
    assert [level for level, _ in records[1:]] == ["WARNING", "WARNING"]
    assert "0.0.0.0" in records[1][1] and "CUR_ML_METRICS_TOKEN" in records[2][1]


@pytest.fixture
def metrics_app(tmp_path, model_a_dir, settings_for):
    """`metrics_app(**settings)`: an app not started (no model, no store): /metrics and its
    token check need neither."""

    def make(**overrides) -> TestClient:
        return TestClient(create_app(settings_for(tmp_path, model_a_dir, **overrides)))

    return make


@pytest.fixture(scope="module")
def started(tmp_path_factory, model_a_dir, settings_for, start):
    """A started app with its model loaded, taking bodies of 1 KiB at most."""
    settings = settings_for(tmp_path_factory.mktemp("headers"), model_a_dir, max_body_bytes=1024)
    with start(settings) as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_metrics_are_open_on_loopback(metrics_app):
    assert metrics_app().get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("settings", "token", "status", "error"),
    [
        ({"host": "0.0.0.0", "metrics_token": METRICS}, None, 401, "unauthorized"),
        ({"host": "0.0.0.0", "metrics_token": METRICS}, "wrong", 403, "forbidden"),
        ({"host": "0.0.0.0", "metrics_token": METRICS}, METRICS, 200, None),
        ({"host": "0.0.0.0", "metrics_token": METRICS, "admin_token": ADMIN}, ADMIN, 200, None),
        ({"host": "0.0.0.0"}, METRICS, 403, "route_disabled"),
        ({"host": "0.0.0.0", "metrics_require_token": False}, None, 200, None),
        ({"metrics_require_token": True, "metrics_token": METRICS}, None, 401, "unauthorized"),
        ({"metrics_require_token": True, "metrics_token": METRICS}, METRICS, 200, None),
    ],
)
def test_metrics_token(metrics_app, settings, token, status, error):
    r = metrics_app(**settings).get("/metrics", headers=_bearer(token) if token else {})
    assert r.status_code == status, r.text
    if error:
        assert r.json()["error"] == error
    else:
        assert "cur_ml_model_ready" in r.text


def test_the_metrics_token_opens_nothing_else(metrics_app):
    client = metrics_app(host="0.0.0.0", metrics_token=METRICS, predict_token=GOOD)
    assert client.post("/v1/predict", json=BODY, headers=_bearer(METRICS)).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/healthz", {}),
        ("GET", "/readyz", {}),
        ("GET", "/metrics", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/no/such/route", {}),
        ("POST", "/v1/predict", {"json": {"appeals": "not a list"}}),
        ("POST", "/v1/predict", {"content": b"x" * 2048, "headers": {"content-length": "2048"}}),
        ("GET", "/console/login", {}),
    ],
)
def test_every_answer_forbids_sniffing_and_caching(started, method, path, kwargs):
    r = started.request(method, path, **kwargs)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert len(r.headers.get_list("cache-control")) == 1


def test_static_files_keep_their_own_caching(started):
    r = started.get("/console/static/console.css")
    assert r.status_code == 200
    assert r.headers.get_list("cache-control") == ["max-age=300"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_a_prediction_is_not_cached(started):
    r = started.post("/v1/predict", json=BODY)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
