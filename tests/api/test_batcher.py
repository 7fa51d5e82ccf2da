"""Coalescing of concurrent requests: merged into one predict call, answered separately;
large requests in their own lane, in chunks, never before the small ones."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from cur_ml.api.batcher import DirectPredictor, PredictBatcher
from cur_ml.api.lane_process import ProcessRunner
from cur_ml.api.lanes import LargeLane, chunks, request_chars
from cur_ml.errors import PredictorBusyError
from cur_ml.model import load_model


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


# ------------------------------------------------------------------ the large lane
class ChunkModel(FakeModel):
    """Sleeps per call (big texts longer) and logs (kind, start, end) of every call."""

    def __init__(self, version: str = "fake", small_seconds: float = 0.0) -> None:
        super().__init__(version)
        self.small_seconds = small_seconds
        self.log: list[tuple[str, float, float]] = []

    def predict(self, records, explain=False):
        kind = "big" if records[0]["text"].startswith("big") else "small"
        start = time.monotonic()
        time.sleep(0.03 if kind == "big" else self.small_seconds)
        out = [{"text": r["text"], "explained": explain, "v": self.version} for r in records]
        with self.lock:
            self.log.append((kind, start, time.monotonic()))
        return out


def big_request(n: int = 20) -> list[dict]:
    return [{"text": f"big-{i:04d}"} for i in range(n)]  # 8 characters each


def lane_for(model_of, **kwargs) -> LargeLane:
    return LargeLane(model_of, min_chars=20, chunk_chars=16, **kwargs)


@pytest.mark.parametrize("coalesce", [True, False])
def test_a_small_request_is_answered_while_a_large_one_runs(coalesce):
    model = ChunkModel()
    lane = lane_for(lambda: model)
    predictor = (
        PredictBatcher(lambda: model, large=lane)
        if coalesce
        else DirectPredictor(lambda: model, large=lane)
    )
    finished: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(lambda: (predictor.predict(big_request(), True), finished.append("big")))
        while not model.log:  # the large request is predicting
            time.sleep(0.005)
        preds, _ = predictor.predict([{"text": "small"}], True)
        finished.append("small")
        (big_preds, used), _ = big.result()
    predictor.close()
    assert finished == ["small", "big"]
    assert preds[0]["text"] == "small"
    assert [p["text"] for p in big_preds] == [r["text"] for r in big_request()]
    assert used is model
    # chunks of at most 16 characters: 2 appeals each
    assert sum(kind == "big" for kind, _, _ in model.log) == 10


def test_the_large_lane_lets_small_requests_predict_first():
    model = ChunkModel(small_seconds=0.15)
    batcher = PredictBatcher(lambda: model, large=lane_for(lambda: model))
    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(batcher.predict, big_request(), False)
        while not model.log:
            time.sleep(0.005)
        small = pool.submit(batcher.predict, [{"text": "small"}], False)
        small.result()
        big.result()
    batcher.close()
    (_, small_start, small_end) = next(e for e in model.log if e[0] == "small")
    started_meanwhile = [s for kind, s, _ in model.log if kind == "big" and small_start < s]
    # at most the chunk already on its way when the small request came; none while it ran
    assert not [s for s in started_meanwhile if s < small_end - 0.01]


def test_chunks_of_a_request_keep_its_model_across_a_swap():
    models = {"now": ChunkModel("a")}
    lane = lane_for(lambda: models["now"])
    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(lane.predict, big_request(), False)
        while not models["now"].log:
            time.sleep(0.005)
        models["now"] = ChunkModel("b")
        preds, used = big.result()
    assert used.version == "a" and {p["v"] for p in preds} == {"a"}
    assert lane.predict(big_request(), False)[1].version == "b"


def test_too_many_large_requests_are_refused_with_a_retry_time():
    model = ChunkModel()
    outcomes: list[str] = []
    lane = lane_for(lambda: model, max_waiting=1, on_request=outcomes.append)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(lane.predict, big_request(40), False)
        while not model.log:
            time.sleep(0.005)
        second = pool.submit(lane.predict, big_request(), False)
        while lane._waiting < 1:
            time.sleep(0.005)
        with pytest.raises(PredictorBusyError) as refused:
            lane.predict(big_request(), False)
        first.result(), second.result()
    assert refused.value.retry_after >= 1
    assert sorted(outcomes) == ["busy", "thread", "thread"]


@pytest.mark.parametrize("max_chars", [1, 10, 100, 10_000])
def test_chunks_cover_the_request_in_order(max_chars):
    records = [{"text": "x" * n} for n in (5, 1, 30, 7, 7, 2, 90)]
    parts = list(chunks(records, max_chars))
    assert [r for part in parts for r in part] == records
    assert all(len(part) == 1 or request_chars(part) <= max_chars for part in parts)


@pytest.fixture(scope="module")
def runner():
    runner = ProcessRunner()
    yield runner
    runner.close()


def _comparable(preds):
    return [{k: v for k, v in p.items() if k != "due_at"} for p in preds]


def test_chunked_predictions_equal_unchunked_in_thread_and_in_process(
    runner, model_a_dir, dev_texts
):
    model = load_model(model_a_dir)
    records = [{"id": i, "text": t} for i, t in enumerate(dev_texts[:40])]
    whole = model.predict(records, explain=True)
    for use in (None, runner):
        outcomes: list[str] = []
        lane = LargeLane(
            lambda: model,
            min_chars=1,
            chunk_chars=500,
            runner=use,
            directory=lambda: model_a_dir,
            on_request=outcomes.append,
        )
        preds, used = lane.predict(records, True)
        assert used is model
        assert _comparable(preds) == _comparable(whole)
        assert outcomes == ["thread" if use is None else "process"]


def test_the_process_predicts_only_with_the_served_file(runner, model_a_dir, model_b_dir):
    model = load_model(model_b_dir)  # served; the directory holds model a meanwhile
    outcomes: list[str] = []
    lane = LargeLane(
        lambda: model,
        min_chars=1,
        runner=runner,
        directory=lambda: model_a_dir,
        on_request=outcomes.append,
    )
    preds, used = lane.predict([{"text": "Яма во дворе"}], False)
    assert used is model and {p["model_version"] for p in preds} == {"test-b"}
    assert outcomes == ["thread"]  # the child refused a's file; the request stayed on b


def test_the_service_answers_large_requests_the_same(app_factory, model_a_dir, dev_texts):
    body = {"appeals": [{"text": t} for t in dev_texts[:30]]}
    answers = []
    for chars in (1_000_000, 200):  # every request small; every request large (in process)
        with app_factory(model_a_dir, large_request_chars=chars, large_chunk_chars=600) as client:
            r = client.post("/v1/predict", json=body)
            assert r.status_code == 200, r.text
            answers.append(_comparable(r.json()["predictions"]))
            if chars == 200:
                assert (
                    'cur_ml_large_requests_total{outcome="process"} 1.0'
                    in client.get("/metrics").text
                )
    for a, b in zip(*answers, strict=True):
        a.pop("prediction_id"), b.pop("prediction_id")
    assert answers[0] == answers[1]


def test_a_busy_large_lane_answers_503_with_retry_after(app_factory, model_a_dir, monkeypatch):
    with app_factory(model_a_dir, large_request_chars=10) as client:
        lane = client.app.state.predictor.large

        def refuse(chars: int) -> None:
            raise PredictorBusyError("8 large requests are waiting already", retry_after=7)

        monkeypatch.setattr(lane, "_admit", refuse)
        r = client.post("/v1/predict", json={"appeals": [{"text": "Во дворе яма, " * 3}]})
        assert r.status_code == 503 and r.json()["error"] == "busy"
        assert r.headers["retry-after"] == "7"
        r = client.post("/v1/predict", json={"appeals": [{"text": "Яма"}]})  # small: served
        assert r.status_code == 200


@pytest.mark.slow
def test_the_lane_process_ends_with_a_killed_worker(model_a_dir):
    code = (
        "import sys; from pathlib import Path; from cur_ml.api.lane_process import ProcessRunner;"
        "from cur_ml.model import load_model; d = Path(sys.argv[1]); r = ProcessRunner();"
        "r.predict(d, load_model(d), [{'text': 'Яма во дворе'}], False); print('ok', flush=True);"
        "import time; time.sleep(60)"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code, str(model_a_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout.readline().strip() == "ok"
        children = psutil.Process(worker.pid).children()
        assert any(c.nice() == 10 for c in children)  # the lane, below the worker's priority
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive


@pytest.mark.slow
def test_a_dead_lane_process_is_replaced_after_a_pause(model_a_dir):
    model, records = load_model(model_a_dir), [{"text": "Яма во дворе"}]
    before = {c.pid for c in psutil.Process().children()}
    runner = ProcessRunner(pause=60)
    try:
        assert runner.predict(model_a_dir, model, records, False)[0]["model_version"] == "test-a"
        started = [c for c in psutil.Process().children() if c.pid not in before and c.nice()]
        assert len(started) == 1  # the lane (the resource tracker is left alone)
        for child in started:
            child.kill()
        psutil.wait_procs(started, timeout=10)
        assert runner.predict(model_a_dir, model, records, False) is None  # the lane: in-thread
        assert runner.predict(model_a_dir, model, records, False) is None  # no respawn yet
        assert not [c for c in psutil.Process().children() if c.pid not in before and c.nice()]
        runner.pause = 0
        assert runner.predict(model_a_dir, model, records, False) is not None
    finally:
        runner.close()


def test_a_predict_that_waited_too_long_is_shed_with_a_retry_time(app_factory, model_a_dir):
    """An overloaded replica answers 503 `busy` (a load balancer retries elsewhere) to a request
    that waited beyond CUR_ML_PREDICT_QUEUE_SECONDS, and stores nothing for it."""
    with app_factory(model_a_dir, predict_queue_seconds=1e-9) as client:
        before = client.app.state.predictions.count()
        r = client.post("/v1/predict", json={"appeals": [{"text": "Не работает лифт"}]})
        assert r.status_code == 503 and r.json()["error"] == "busy", r.text
        assert r.headers["retry-after"] == "1" and "CUR_ML_PREDICT_QUEUE_SECONDS" in r.text
        assert client.app.state.predictions.count() == before
    with app_factory(model_a_dir, predict_queue_seconds=0) as client:  # 0: never shed
        r = client.post("/v1/predict", json={"appeals": [{"text": "Не работает лифт"}]})
        assert r.status_code == 200
