"""Property-based fuzzing from the OpenAPI schema (schemathesis): no request gets a 5xx."""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same requests every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def operation(client):
    schema = schemathesis.openapi.from_dict(client.app.openapi())
    return schema["/v1/predict"]["POST"]


def send(client, case):
    """Send a generated case through the module's running app (not a fresh one per case)."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    params = {
        k: v if v is None or isinstance(v, str | int | float | bool) else json.dumps(v)
        for k, v in (kwargs.get("params") or {}).items()
    }
    try:
        request = client.build_request(
            kwargs["method"],
            kwargs["url"],
            json=kwargs.get("json"),
            params=params,
            headers=kwargs.get("headers"),
        )
    except (ValueError, TypeError, httpx.HTTPError):
        reject()  # a request the HTTP client itself cannot send (e.g. a newline in a header)
    return client.send(request)


def check(client, case) -> int:
    response = send(client, case)
    assert response.status_code < 500, (response.status_code, response.text[:500], case.body)
    body = response.json()
    if response.status_code >= 400:
        assert body["error"] and body["request_id"], body
        if response.status_code == 422:
            assert body["detail"] and all(d["field"] and d["problem"] for d in body["detail"])
    else:
        assert len(body["predictions"]) == len(case.body["appeals"])
    return response.status_code


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_predict_never_answers_5xx(client, operation, mode):
    """300 schema-valid and 300 schema-breaking requests."""
    statuses: list[int] = []

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(mode))
    def run(case) -> None:
        statuses.append(check(client, case))

    run()
    assert len(statuses) >= 250, len(statuses)
    if mode is GenerationMode.POSITIVE:  # most valid requests are answered, not refused
        assert statuses.count(200) > len(statuses) / 2, sorted(set(statuses))


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(st.binary(max_size=300))
def test_raw_bytes_never_give_5xx(client, raw):
    r = client.post("/v1/predict", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(
    lat=st.one_of(st.floats(), st.integers(), st.text(max_size=5), st.none()),
    lon=st.one_of(st.floats(allow_nan=True), st.integers(min_value=-(10**30), max_value=10**30)),
)
def test_any_coordinates_are_422_or_used(client, lat, lon):
    body = json.dumps({"appeals": [{"text": "Яма на дороге", "lat": lat, "lon": lon}]})
    r = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert {d["field"] for d in r.json()["detail"]} <= {"appeals[0].lat", "appeals[0].lon"}
