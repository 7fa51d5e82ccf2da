"""Coalescing of concurrent requests: merged into one predict call, answered separately."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cur_ml.api.batcher import DirectPredictor, PredictBatcher


class FakeModel:
    """Echoes each record's text; slow enough for requests to pile up; fails on 'boom'."""

    def __init__(self, version: str = "fake") -> None:
        self.version = version
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def predict(self, records, explain=False):
        with self.lock:
            self.calls.append(len(records))
        time.sleep(0.02)
        if any(r["text"] == "boom" for r in records):
            raise ValueError("boom")
        return [{"text": r["text"], "explained": explain, "v": self.version} for r in records]


def test_concurrent_requests_are_merged_and_answered_in_order():
    model = FakeModel()
    batcher = PredictBatcher(lambda: model, max_appeals=50).start()
    try:
        requests = [[{"text": f"{i}-{j}"} for j in range(1 + i % 3)] for i in range(40)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda recs: batcher.predict(recs, True), requests))
    finally:
        batcher.close()
    for recs, (preds, used) in zip(requests, answers, strict=True):
        assert [p["text"] for p in preds] == [r["text"] for r in recs]
        assert used is model
    assert max(model.calls) > 1 and len(model.calls) < len(requests)
    assert max(model.calls) <= 50


def test_a_failing_request_does_not_fail_its_batch_mates():
    model = FakeModel()
    batcher = PredictBatcher(lambda: model).start()
    try:
        texts = ["a", "b", "boom", "c", "d", "e"]
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(batcher.predict, [{"text": t}], False) for t in texts]
        for text, future in zip(texts, futures, strict=True):
            if text == "boom":
                with pytest.raises(ValueError):
                    future.result()
            else:
                assert future.result()[0][0]["text"] == text
    finally:
        batcher.close()


def test_explain_flags_are_kept_apart():
    model = FakeModel()
    batcher = PredictBatcher(lambda: model).start()
    try:
        with ThreadPoolExecutor(8) as pool:
            flags = [i % 2 == 0 for i in range(16)]
            answers = list(pool.map(lambda f: batcher.predict([{"text": "x"}], f), flags))
    finally:
        batcher.close()
    assert [a[0][0]["explained"] for a in answers] == flags


def test_the_model_is_read_per_batch():
    models = {"now": FakeModel("a")}
    batcher = PredictBatcher(lambda: models["now"]).start()
    try:
        assert batcher.predict([{"text": "x"}], False)[1].version == "a"
        models["now"] = FakeModel("b")
        assert batcher.predict([{"text": "x"}], False)[1].version == "b"
    finally:
        batcher.close()


def test_closed_batcher_refuses_and_direct_predictor_works():
    batcher = PredictBatcher(FakeModel).start()
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.predict([{"text": "x"}], False)
    preds, model = DirectPredictor(FakeModel).predict([{"text": "y"}], True)
    assert preds[0]["text"] == "y" and model.version == "fake"


def test_the_service_answers_the_same_without_coalescing(app_factory, model_a_dir, dev_texts):
    body = {"appeals": [{"text": t} for t in dev_texts[:10]]}
    answers = []
    for coalesce in (True, False):
        with app_factory(model_a_dir, coalesce_predictions=coalesce) as client:
            r = client.post("/v1/predict", json=body)
            assert r.status_code == 200
            answers.append(
                [
                    {k: v for k, v in p.items() if k != "prediction_id"}
                    for p in r.json()["predictions"]
                ]
            )
    for a, b in zip(*answers, strict=True):
        a.pop("due_at"), b.pop("due_at")
        assert a == b
