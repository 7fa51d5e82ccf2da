"""Every failure has a clear answer, on SQLite and PostgreSQL: out-of-range integers and
characters a database refuses are 422 naming the field (and nothing is stored), any store
error is 503 `store_unavailable` with a request id, and no public error body carries a file
path or a hash fragment (the log has them)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from app_support import PG_URL, fresh_schema, reachable, running
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from test_bad_input import CASES

from cur_ml.api.main import create_app
from cur_ml.store import PredictionRecord, make_engine
from cur_ml.store.corrections import CorrectionRecord
from cur_ml.store.label_approvals import LabelApproval

OPERATOR = "operator-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
ADM = {"Authorization": f"Bearer {ADMIN}"}
TOKENS = {"operator_token": OPERATOR, "admin_token": ADMIN}


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_url(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.sqlite3'}"
        return
    why = reachable(PG_URL)
    if why is not None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({why})")
    with fresh_schema(PG_URL) as url:
        yield url


@pytest.fixture(scope="module")
def app(tmp_path_factory, model_a_dir, store_url, settings_for) -> Iterator[TestClient]:
    """An app with operator and admin tokens on each store (shared by the module's tests)."""
    tmp = tmp_path_factory.mktemp("api")
    with running(settings_for(tmp, model_a_dir, database_url=store_url, **TOKENS)) as client:
        yield client


def _public(r, app: TestClient) -> None:
    """The answer shows neither the store's nor the model's whereabouts."""
    settings = app.app.state.settings
    secrets = [*_model_secrets(settings.model_dir), settings.database_url]
    assert _secrets_in(r.text, secrets) == [], r.text


@pytest.fixture(scope="module")
def served(app) -> str:
    """The prediction_id of a stored prediction (what corrections refer to)."""
    r = app.post("/v1/predict", json={"appeals": [{"text": "Не горит фонарь во дворе"}]})
    assert r.status_code == 200, r.text
    assert app.app.state.writer.flush(10)
    return r.json()["predictions"][0]["prediction_id"]


def _rows(url: str) -> tuple[int, ...]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(
                conn.scalar(select(func.count()).select_from(table))
                for table in (PredictionRecord, CorrectionRecord, LabelApproval)
            )
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- integers
# (path, parameter, value out of range) for every integer query parameter of the API
OUT_OF_RANGE = [
    ("/v1/corrections", "cursor", 2**63),
    ("/v1/corrections", "cursor", -1),
    ("/v1/corrections", "limit", 0),
    ("/v1/corrections", "limit", 10**30),
    ("/v1/review-queue", "offset", 2**63),
    ("/v1/review-queue", "limit", 501),
    ("/v1/admin/labels", "limit", 2**64),
    ("/v1/admin/retrain", "limit", -(2**63) - 1),
]


@pytest.mark.parametrize(("path", "name", "value"), OUT_OF_RANGE)
def test_integers_out_of_range_are_a_422_naming_the_parameter(app, path, name, value):
    r = app.get(path, params={name: value}, headers=ADM)
    assert r.status_code == 422, r.text
    body = r.json()
    assert [d["field"] for d in body["detail"]] == [name]
    problem = body["detail"][0]["problem"]
    assert re.fullmatch(rf"{value} is out of range: -?\d+ to \d+", problem), problem
    assert body["request_id"] == r.headers["x-request-id"]
    _public(r, app)


def test_the_largest_cursor_is_answered(app):
    r = app.get("/v1/corrections", params={"cursor": 2**63 - 1}, headers=ADM)
    assert r.status_code == 200, r.text
    assert r.json() == {"corrections": [], "next_cursor": None}


# --------------------------------------------------------------------------- text fields
def _appeal(**fields) -> dict:
    return {"appeals": [{"text": "Яма во дворе", **fields}]}


def _correction(pid: str, **fields) -> dict:
    return {"corrections": [{"prediction_id": pid, "field": "urgency", "value": "high", **fields}]}


def _label(**fields) -> dict:
    return {"field": "agency", "label": "СПб ГБУ «Мостотрест»", **fields}


# (route, field named in the answer, body with `BAD` in that field); PID: a stored prediction
BAD, PID = "\x00", "<pid>"
BODIES = [
    ("/v1/predict", f"appeals[0].{name}", _appeal(**{name: f"a{BAD}b"}))
    for name in ("text", "id", "source", "district", "municipality", "address", "city_object")
] + [
    ("/v1/predict", "appeals[0].created_at", _appeal(created_at=f"2024-05-14{BAD}")),
    ("/v1/corrections", "corrections[0].prediction_id", _correction(f"{PID}{BAD}")),
    ("/v1/corrections", "corrections[0].value", _correction(PID, value=f"high{BAD}")),
    ("/v1/corrections", "corrections[0].operator", _correction(PID, operator=f"я{BAD}")),
    ("/v1/corrections", "corrections[0].comment", _correction(PID, comment=f"{BAD}")),
    ("/v1/corrections", "corrections[0].idempotency_key", _correction(PID, idempotency_key=BAD)),
    ("/v1/admin/corrections", "corrections[0].value", _correction(PID, value=f"new{BAD}")),
    ("/v1/admin/corrections", "corrections[0].operator", _correction(PID, operator=BAD)),
    ("/v1/admin/labels", "label", _label(label=f"Мост{BAD}трест")),
    ("/v1/admin/labels", "approved_by", _label(approved_by=BAD)),
    ("/v1/admin/labels", "comment", _label(comment=f"x{BAD}")),
]
# (path, query, field) for every text parameter
PARAMS = [
    ("/v1/corrections", {"operator": BAD}, "operator"),
    ("/v1/corrections", {"prediction_id": f"a{BAD}"}, "prediction_id"),
    *[
        ("/v1/review-queue", {n: f"{BAD}x"}, n)
        for n in ("district", "category", "agency", "source")
    ],
    ("/v1/predictions/a%00b", {}, "prediction_id"),
    ("/v1/admin/retrain/a%00b", {}, "run_id"),
]


def _send_body(app, path: str, body: dict, served: str, bad: str):
    """The body with `BAD` replaced by `bad` and PID by `served`, sent as JSON text (a lone
    surrogate goes as its JSON escape)."""
    raw = json.dumps(body).replace("<pid>", served).replace("\\u0000", json.dumps(bad)[1:-1])
    return app.post(path, content=raw, headers={**ADM, "Content-Type": "application/json"})


@pytest.mark.parametrize("bad", ["\x00", "\ud800"], ids=["NUL", "lone-surrogate"])
@pytest.mark.parametrize(("path", "field", "body"), BODIES, ids=[b[1] for b in BODIES])
def test_text_a_database_refuses_is_a_422_and_nothing_is_stored(
    app, served, store_url, path, field, body, bad
):
    """PostgreSQL text cannot hold NUL and UTF-8 cannot encode a lone surrogate: refused with
    the field and the position, before anything is acknowledged or stored."""
    before = _rows(store_url)
    r = _send_body(app, path, body, served, bad)
    assert r.status_code == 422, r.text
    problems = {d["field"]: d["problem"] for d in r.json()["detail"]}
    assert list(problems) == [field], problems
    what = "a NUL character" if bad == "\x00" else "a character that is not valid Unicode"
    assert f"contains {what} at position" in problems[field]
    _public(r, app)
    assert app.app.state.writer.flush(10)
    assert _rows(store_url) == before


@pytest.mark.parametrize(("path", "params", "field"), PARAMS, ids=[p[2] for p in PARAMS])
def test_nul_in_a_text_parameter_is_a_422(app, path, params, field):
    r = app.get(path, params=params, headers=ADM)
    assert r.status_code == 422, r.text
    assert [(d["field"], d["problem"][:24]) for d in r.json()["detail"]] == [
        (field, "contains a NUL character")
    ]
    _public(r, app)


def test_every_text_the_api_reads_is_checked(app):
    """Each string of every request body and parameter is documented NUL-free (and `Text`
    enforces what it documents): a new field cannot forget the check."""
    doc = app.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    unchecked = []

    def visit(schema: dict, where: str) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return visit(schemas[name], name)
        for key in ("anyOf", "oneOf", "allOf"):
            for part in schema.get(key, []):
                visit(part, where)
        if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
            if "pattern" not in schema or "\\u0000" not in schema["pattern"]:
                unchecked.append(where)
        for name, prop in schema.get("properties", {}).items():
            visit(prop, f"{where}.{name}")
        if "items" in schema:
            visit(schema["items"], f"{where}[]")
        return None

    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for param in op.get("parameters", []):
                visit(param["schema"], f"{method} {path} {param['name']}")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                visit(body["schema"], f"{method} {path} body")
    assert unchecked == []


# --------------------------------------------------------------------------- store errors
def _db_error(kind: type[sa_exc.DBAPIError], orig: Exception) -> sa_exc.DBAPIError:
    return kind("SELECT * FROM corrections WHERE secret_path = '/var/lib/x.db'", {}, orig)


DRIVER_ERRORS = [
    _db_error(sa_exc.DatabaseError, sqlite3.DatabaseError("file is not a database")),
    _db_error(sa_exc.IntegrityError, sqlite3.IntegrityError("UNIQUE constraint failed")),
    _db_error(sa_exc.OperationalError, sqlite3.OperationalError("database is locked")),
    _db_error(sa_exc.IntegrityError, psycopg.errors.UniqueViolation("duplicate key value")),
    _db_error(sa_exc.OperationalError, psycopg.OperationalError("server closed the connection")),
    _db_error(sa_exc.InterfaceError, psycopg.InterfaceError("the connection is closed")),
    sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
]


@pytest.mark.parametrize("error", DRIVER_ERRORS, ids=lambda e: f"{type(e).__name__}")
def test_any_store_error_is_a_503_with_a_request_id(app, monkeypatch, error):
    """Errors of either driver, wrapped or not by a route, are 503 `store_unavailable`; what
    the database said (statements, paths) stays in the log."""

    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(app.app.state.corrections, "query", fail)
    monkeypatch.setattr(app.app.state.review_queue, "page", fail)
    for path in ("/v1/corrections", "/v1/review-queue"):
        r = app.get(path, headers={**ADM, "X-Request-ID": "store-err-1"})
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["error"] == "store_unavailable" and body["request_id"] == "store-err-1"
        assert r.headers["retry-after"]
        assert (
            "secret_path" not in r.text and "/var/lib" not in r.text and "QueuePool" not in r.text
        )


def test_a_store_error_outside_any_route_guard_is_a_503(settings_for, tmp_path, model_a_dir):
    """The app-wide handler: an error of the database no route wrapped is a 503 too."""
    app = create_app(settings_for(tmp_path, model_a_dir))

    def broken() -> None:
        raise DRIVER_ERRORS[0]

    app.add_api_route("/test/broken-store", broken, include_in_schema=False)
    r = TestClient(app).get("/test/broken-store", headers={"X-Request-ID": "q-503"})
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "store_unavailable" and r.json()["request_id"] == "q-503"


def test_a_corrupt_sqlite_file_is_503_everywhere(app_factory, model_a_dir, tmp_path):
    """The file overwritten in place (same inode): every store route and /readyz say 503."""
    with app_factory(model_a_dir, store_check_seconds=0, **TOKENS) as client:
        r = client.post("/v1/predict", json={"appeals": [{"text": "Яма во дворе"}]})
        pid = r.json()["predictions"][0]["prediction_id"]
        assert client.app.state.writer.flush(10)
        for file in tmp_path.glob("store.sqlite3*"):
            size = file.stat().st_size
            with open(file, "r+b") as f:
                f.write(os.urandom(size))
        gets = ["/v1/corrections", f"/v1/predictions/{pid}", "/v1/review-queue"]
        gets += ["/v1/admin/retrain", "/v1/admin/labels"]
        answers = [client.get(path, headers=ADM) for path in gets]
        answers.append(client.post("/v1/corrections", json=_correction(pid), headers=ADM))
        answers.append(client.post("/v1/admin/retrain", headers=ADM))
        for r in answers:
            assert r.status_code == 503 and r.json()["error"] == "store_unavailable", r.text
            assert str(tmp_path) not in r.text
        r = client.post("/v1/predict", json={"appeals": [{"text": "Яма во дворе"}]})
        assert r.status_code == 503 and r.json()["error"] == "store_unavailable", r.text
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "store_unavailable", r.text
        assert str(tmp_path) not in r.text


def test_tables_gone_on_postgresql_is_503_not_500(tmp_path, model_a_dir, settings_for):
    why = reachable(PG_URL)
    if why is not None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({why})")
    settings = settings_for(tmp_path, model_a_dir, **TOKENS)
    with fresh_schema(PG_URL) as url:
        settings = settings.model_copy(update={"database_url": url})
        with running(settings) as client:
            engine = make_engine(url)
            with engine.begin() as conn:
                for table in ("corrections", "label_approvals", "retrain_runs", "predictions"):
                    conn.exec_driver_sql(f"DROP TABLE {table} CASCADE")
            engine.dispose()
            for path in ("/v1/corrections", "/v1/review-queue", "/v1/admin/labels"):
                r = client.get(path, headers=ADM)
                assert r.status_code == 503 and r.json()["error"] == "store_unavailable", r.text
            r = client.post("/v1/predict", json={"appeals": [{"text": "Яма во дворе"}]})
            assert r.status_code == 503, r.text  # nothing acknowledged


# --------------------------------------------------------------------------- public bodies
def _secrets_in(text: str, secrets: list[str]) -> list[str]:
    """What of `secrets` (paths, hash fragments) a public answer shows; absolute paths too."""
    found = [s for s in secrets if s and s in text]
    found += re.findall(r"(?<![\w.])/(?:tmp|home|work|var|usr|root|srv|opt)/[^\s\"']*", text)
    return found


def _model_secrets(model_dir: Path) -> list[str]:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    hashes = [v for v in _strings(manifest) if re.fullmatch(r"[0-9a-f]{40,}", v)]
    return [str(model_dir), *(h[:8] for h in hashes), *(h[-8:] for h in hashes)]


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_a_model_that_fails_to_load_is_named_in_the_log_only(
    tmp_path, model_a_dir, settings_for, caplog
):
    """/readyz, predict and /v1/model answer 503 without the model's path or checksums."""
    model = tmp_path / "model"
    model.mkdir()
    for file in model_a_dir.iterdir():
        if file.is_file():
            (model / file.name).write_bytes(file.read_bytes())
    pkl = next(p for p in model.iterdir() if p.suffix in (".pkl", ".joblib"))
    pkl.write_bytes(pkl.read_bytes() + b"tampered")
    actual = hashlib.sha256(pkl.read_bytes()).hexdigest()
    secrets = [*_model_secrets(model), str(tmp_path), actual[:8], actual[-8:]]
    app = create_app(settings_for(tmp_path, model))
    with caplog.at_level(logging.ERROR), TestClient(app) as client:
        deadline = time.monotonic() + 30
        while app.state.slot.error is None:
            assert time.monotonic() < deadline, "the model load did not fail"
            time.sleep(0.02)
        answers = [
            client.get("/readyz"),
            client.post("/v1/predict", json={"appeals": [{"text": "Яма"}]}),
            client.get("/v1/model"),
        ]
    for r in answers:
        assert r.status_code == 503, r.text
        assert _secrets_in(r.text, secrets) == [], r.text
    assert any(str(model) in rec.getMessage() for rec in caplog.records)


def test_no_bad_input_answer_shows_a_path_or_hash(client):
    """The bodies of the whole bad-input suite (tests/api/test_bad_input.py), scanned."""
    for _case, body, _status, _field in CASES:
        r = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
        _public(r, client)
