"""A 2xx from /v1/predict means its prediction_ids are stored: SIGKILL the server under
load, on SQLite and PostgreSQL, and every acknowledged prediction is in the store."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from sqlalchemy import select

from cur_ml.store import PredictionRecord, make_engine

pytestmark = pytest.mark.slow

LOAD_SECONDS = 4.0


def _client_loop(url, texts, size, acked, lock, stop) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            appeals = [{"id": i + k, "text": texts[(i + k) % len(texts)]} for k in range(size)]
            i += size
            try:
                r = client.post("/v1/predict", json={"appeals": appeals}, params={"explain": False})
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code == 200:
                with lock:
                    acked += [p["prediction_id"] for p in r.json()["predictions"]]


def _kill_under_load(server, texts) -> list[str]:
    acked: list[str] = []
    lock, stop = threading.Lock(), threading.Event()
    sizes = (1, 1, 100, 200)  # single appeals beside batches
    threads = [
        threading.Thread(target=_client_loop, args=(server.url, texts, s, acked, lock, stop))
        for s in sizes
    ]
    for t in threads:
        t.start()
    time.sleep(LOAD_SECONDS)
    server.kill()  # SIGKILL: no shutdown, no drain
    stop.set()
    for t in threads:
        t.join(30)
    return acked


def _missing(database_url: str, acked: list[str]) -> list[str]:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = set(conn.scalars(select(PredictionRecord.prediction_id)))
    engine.dispose()
    return [p for p in acked if p not in stored]


def _check(server, database_url, texts) -> None:
    acked = _kill_under_load(server, texts)
    assert len(acked) > 100, "the load did not get going"
    missing = _missing(database_url, acked)
    print("\ndurability", json.dumps({"acknowledged": len(acked), "missing": len(missing)}))
    assert missing == []


def test_acknowledged_predictions_survive_sigkill_sqlite(server_on, tmp_path, dev_texts):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    _check(server_on(url), url, dev_texts)


def test_acknowledged_predictions_survive_sigkill_postgresql(server_on, pg_store, dev_texts):
    _check(server_on(pg_store), pg_store, dev_texts)
