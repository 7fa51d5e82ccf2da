"""`/metrics` parses as Prometheus text; logs are JSON lines carrying the request id."""

from __future__ import annotations

import io
import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from cur_ml.api.logs import JsonFormatter, log_config


def families(client) -> dict:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(fams: dict, family: str, sample: str, **labels) -> float:
    found = [
        s.value
        for s in fams[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(found)


def test_metrics_count_requests_predictions_and_reviews(app_factory, model_a_dir, dev_texts):
    with app_factory(model_a_dir) as client:
        texts = dev_texts[:12]
        r = client.post("/v1/predict", json={"appeals": [{"text": t} for t in texts]})
        preds = r.json()["predictions"]
        client.post("/v1/predict", json={"appeals": []})  # a 422
        fams = families(client)

        route = {"route": "/v1/predict", "method": "POST"}
        assert (
            value(fams, "cur_ml_http_requests", "cur_ml_http_requests_total", status="200", **route)
            == 1
        )
        assert (
            value(fams, "cur_ml_http_requests", "cur_ml_http_requests_total", status="422", **route)
            == 1
        )
        count = value(
            fams,
            "cur_ml_http_request_duration_seconds",
            "cur_ml_http_request_duration_seconds_count",
            **route,
        )
        assert count == 2
        for head in ("category", "reason", "urgency", "agency"):
            total = value(fams, "cur_ml_predictions", "cur_ml_predictions_total", head=head)
            assert total == len(texts)
            label = preds[0][head]
            expected = sum(p[head] == label for p in preds)
            got = value(
                fams, "cur_ml_predictions", "cur_ml_predictions_total", head=head, label=label
            )
            assert got == expected
        flagged = sum(p["needs_review"] for p in preds)
        assert value(fams, "cur_ml_needs_review", "cur_ml_needs_review_total") == flagged
        assert value(fams, "cur_ml_appeals", "cur_ml_appeals_total") == len(texts)
        ratio = value(fams, "cur_ml_needs_review_ratio", "cur_ml_needs_review_ratio")
        assert abs(ratio - flagged / len(texts)) < 1e-9
        assert value(fams, "cur_ml_model_info", "cur_ml_model_info", version="test-a") == 1
        assert value(fams, "cur_ml_model_ready", "cur_ml_model_ready") == 1
        assert value(fams, "cur_ml_model_loads", "cur_ml_model_loads_total", outcome="ok") == 1


def test_unknown_paths_share_one_label(client):
    for path in ("/a", "/b", "/c/d"):
        client.get(path)
    fams = families(client)
    routes = {s.labels["route"] for s in fams["cur_ml_http_requests"].samples}
    assert "unmatched" in routes and "/a" not in routes


def test_request_id_is_echoed_or_made(client):
    body = {"appeals": [{"text": "Яма"}]}
    r = client.post("/v1/predict", json=body, headers={"X-Request-ID": "routing-42.a"})
    assert r.headers["x-request-id"] == "routing-42.a"
    made = client.post("/v1/predict", json=body).headers["x-request-id"]
    assert len(made) == 32
    odd = client.post("/v1/predict", json=body, headers={"X-Request-ID": "a b\tc" * 40})
    assert odd.headers["x-request-id"] != "a b\tc" * 40  # not echoed: replaced by a fresh id
    err = client.post("/v1/predict", json={}, headers={"X-Request-ID": "bad-1"})
    assert err.headers["x-request-id"] == "bad-1" and err.json()["request_id"] == "bad-1"


def test_access_log_is_json_with_the_request_id(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cur_ml.access")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        client.post(
            "/v1/predict", json={"appeals": [{"text": "Яма"}]}, headers={"X-Request-ID": "log-1"}
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["request_id"] == "log-1"
    assert line["route"] == "/v1/predict" and line["status"] == 200
    assert line["duration_ms"] > 0 and line["level"] == "INFO"


def test_log_config_is_valid():
    import logging.config

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        for json_lines in (True, False):
            logging.config.dictConfig(log_config("INFO", json_lines))
            assert len(root.handlers) == 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
