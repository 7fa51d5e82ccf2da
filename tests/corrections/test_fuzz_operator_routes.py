"""Schema-driven fuzzing (schemathesis) of the operator and retrain routes: never a 5xx,
every error names its field; on SQLite and PostgreSQL (NUL bytes, odd dates, long strings)."""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from corrections_support import ADM, fresh_schema, predict, running, settings_for
from hypothesis import HealthCheck, given, reject, settings
from schemathesis.generation.modes import GenerationMode

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same requests every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
    database=None,
)
OPERATIONS = [
    ("/v1/corrections", "POST"),
    ("/v1/corrections", "GET"),
    ("/v1/review-queue", "GET"),
    ("/v1/predictions/{prediction_id}", "GET"),
    ("/v1/admin/retrain/{run_id}", "GET"),
    ("/v1/admin/corrections", "POST"),
    ("/v1/admin/labels", "POST"),
    ("/v1/admin/labels", "GET"),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_client(request, tmp_path_factory, model_a_dir):
    tmp = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        with running(settings_for(tmp, model_a_dir)) as client:
            yield client
        return
    server = request.getfixturevalue("postgres")
    with (
        fresh_schema(server) as url,
        running(settings_for(tmp, model_a_dir, database_url=url)) as c,
    ):
        yield c


def _send(client, case):
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
            headers={**(kwargs.get("headers") or {}), "Authorization": ADM["Authorization"]},
        )
    except (ValueError, TypeError, httpx.HTTPError):
        reject()  # a request the HTTP client itself cannot send
    return client.send(request)


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_operator_routes_never_answer_5xx(fuzz_client, path, method, mode):
    client = fuzz_client
    predict(client, [{"text": "Яма во дворе"}])  # something to find
    operation = schemathesis.openapi.from_dict(client.app.openapi())[path][method]
    statuses: list[int] = []

    @FUZZ
    @given(case=operation.as_strategy(mode))
    def run(case) -> None:
        r = _send(client, case)
        assert r.status_code < 500, (r.status_code, r.text[:500], case.body, case.query)
        body = r.json()
        if r.status_code >= 400:
            assert body["error"] and body["request_id"], body
            if r.status_code == 422:
                assert body["detail"] and all(d["field"] and d["problem"] for d in body["detail"])
        statuses.append(r.status_code)

    run()
    assert len(statuses) >= 60, len(statuses)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/corrections", {"operator": "\x00"}, "operator"),
        ("/v1/corrections", {"prediction_id": "a\x00"}, "prediction_id"),
        ("/v1/corrections", {"until": "0.5"}, "until"),  # a number is not an ISO 8601 time
        ("/v1/review-queue", {"district": "\x00"}, "district"),
        ("/v1/review-queue", {"until": "0.5"}, "until"),
        ("/v1/review-queue", {"since": "1715678400"}, "since"),
        ("/v1/predictions/%00", {}, "prediction_id"),
        ("/v1/admin/retrain/%00", {}, "run_id"),
    ],
)
def test_what_a_database_cannot_hold_is_a_422(fuzz_client, path, params, field):
    """NUL characters (PostgreSQL text refuses them) and times that are not ISO 8601."""
    r = fuzz_client.get(path, params=params, headers=ADM)
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["detail"]] == [field]


FAR_FUTURE = "9999-12-31T23:59:59-23:59"  # after datetime.max once in UTC
FAR_PAST = "0001-01-01T00:00:00+23:59"  # before datetime.min once in UTC


@pytest.mark.parametrize(
    ("path", "key"), [("/v1/corrections", "corrections"), ("/v1/review-queue", "items")]
)
def test_times_beyond_the_utc_range_are_its_ends(fuzz_client, path, key):
    """A valid ISO 8601 bound that leaves datetime's range in UTC is that range's end: it
    selects what the end would (not a 422, not a 500)."""
    (pred,) = predict(fuzz_client, [{"text": "!!!"}])  # no words: flagged for review
    assert pred["needs_review"]
    if path == "/v1/corrections":  # something to list
        item = {"prediction_id": pred["prediction_id"], "field": "urgency", "value": "high"}
        r = fuzz_client.post("/v1/corrections", json={"corrections": [item]}, headers=ADM)
        assert r.status_code in (200, 201), r.text
    for params, found in [
        ({"since": FAR_FUTURE}, False),
        ({"until": FAR_PAST}, False),
        ({"since": FAR_PAST}, True),
        ({"until": FAR_FUTURE}, True),
    ]:
        r = fuzz_client.get(path, params=params, headers=ADM)
        assert r.status_code == 200, (params, r.text)
        assert bool(r.json()[key]) is found, (params, r.json())
