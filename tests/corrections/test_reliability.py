"""Many operators at once against a real server process, on SQLite and PostgreSQL: every
acknowledged correction is stored exactly once, also when the server is SIGKILLed mid-load.

50 threads (an httpx client each) send 5,000 corrections in batches of 20 with idempotency
keys; some batches are sent twice on purpose, and every batch whose answer was lost (server
killed, 503) is sent again with the same keys until it is acknowledged.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import httpx
import pytest
from corrections_support import DEMO, OP
from sqlalchemy import select

from cur_ml.data import load_appeals
from cur_ml.store import PredictionRecord, make_engine
from cur_ml.store.corrections import CorrectionRecord

pytestmark = pytest.mark.slow

THREADS, BATCHES, BATCH = 50, 5, 20  # 5,000 corrections
PREDICTIONS = 1_000
FIELDS = ("category", "reason", "urgency", "agency")
URGENCIES = ("high", "medium", "low")


@lru_cache(maxsize=1)
def _labels() -> dict[str, list[str]]:
    """Labels of the served demo model (only those are accepted)."""
    train = load_appeals([DEMO], split="train").frame
    return {f: sorted(set(train[f])) for f in FIELDS}


def _item(t: int, b: int, i: int, pids: list[str]) -> dict:
    key = f"op{t:02d}-b{b:02d}-{i:02d}"
    field_ = FIELDS[(t + b + i) % 4]
    labels = URGENCIES if field_ == "urgency" else _labels()[field_]
    value = labels[(t * 7 + b * 3 + i) % len(labels)]
    return {
        "prediction_id": pids[(t * BATCHES * BATCH + b * BATCH + i * 7) % len(pids)],
        "field": field_,
        "value": value,
        "operator": f"operator-{t:02d}",
        "comment": key,
        "idempotency_key": key,
    }


@dataclass
class Load:
    """What the clients saw."""

    acked: dict[str, int] = field(default_factory=dict)  # key → id, from 2xx answers
    created: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # key → created:true
    requests: int = 0
    repeats: int = 0  # batches sent again on purpose after their answer
    lost: int = 0  # requests without an answer (connection refused/reset, timeout)
    busy: int = 0  # 503 answers
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, items: list[dict], body: dict) -> None:
        with self.lock:
            for item, rec in zip(items, body["corrections"], strict=True):
                key = item["idempotency_key"]
                if rec["idempotency_key"] != key or rec["value"] != item["value"]:
                    self.problems.append(f"answer for {key} does not match: {rec}")
                if self.acked.setdefault(key, rec["id"]) != rec["id"]:
                    self.problems.append(f"{key} acknowledged as {rec['id']} and {self.acked[key]}")
                self.created[key] += rec["created"]


def _send(client: httpx.Client, items: list[dict], load: Load, deadline: float) -> dict | None:
    """POST until acknowledged (same keys every time); None on an unexpected answer."""
    while time.monotonic() < deadline:
        with load.lock:
            load.requests += 1
        try:
            r = client.post("/v1/corrections", json={"corrections": items})
        except httpx.HTTPError:
            with load.lock:
                load.lost += 1
            time.sleep(0.2)
            continue
        if r.status_code in (200, 201):
            body = r.json()
            load.ack(items, body)
            return body
        if r.status_code == 503:
            with load.lock:
                load.busy += 1
            time.sleep(0.2)
            continue
        with load.lock:
            load.problems.append(f"{r.status_code}: {r.text[:300]}")
        return None
    with load.lock:
        load.problems.append("not acknowledged before the deadline")
    return None


def _operator(t: int, url: str, pids: list[str], load: Load, deadline: float) -> None:
    with httpx.Client(base_url=url, headers=OP, timeout=30) as client:
        for b in range(BATCHES):
            items = [_item(t, b, i, pids) for i in range(BATCH)]
            if _send(client, items, load, deadline) is None:
                return
            if (t + b) % 5 == 0:  # a client that did not trust its answer sends it again
                with load.lock:
                    load.repeats += 1
                again = _send(client, items, load, deadline)
                if again is not None and any(c["created"] for c in again["corrections"]):
                    with load.lock:
                        load.problems.append("a repeated batch created rows")


def _seed(server, database_url: str, texts: list[str]) -> list[str]:
    """Predictions to correct, waited for in the store (a SIGKILL must not take them along)."""
    pids: list[str] = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for start in range(0, PREDICTIONS, 250):
            appeals = [{"id": i, "text": texts[i % len(texts)]} for i in range(start, start + 250)]
            r = client.post("/v1/predict", json={"appeals": appeals}, params={"explain": False})
            assert r.status_code == 200, r.text
            pids += [p["prediction_id"] for p in r.json()["predictions"]]
    engine = make_engine(database_url)
    deadline = time.monotonic() + 30
    while True:
        with engine.connect() as conn:
            stored = len(conn.scalars(select(PredictionRecord.prediction_id)).all())
        if stored == PREDICTIONS:
            break
        assert time.monotonic() < deadline, f"only {stored} predictions stored"
        time.sleep(0.1)
    engine.dispose()
    return pids


def _run(server, database_url: str, texts: list[str], kill_after: int | None) -> dict:
    pids = _seed(server, database_url, texts)
    load = Load()
    deadline = time.monotonic() + 150
    threads = [
        threading.Thread(target=_operator, args=(t, server.url, pids, load, deadline))
        for t in range(THREADS)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    killed_at = None
    if kill_after is not None:
        while len(load.acked) < kill_after and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        server.kill()  # SIGKILL: no shutdown, requests in flight are cut
        with load.lock:
            before_kill = dict(load.acked)
        killed_at = len(before_kill)
        _assert_stored(database_url, before_kill)  # before any client could send them again
        server.start()  # same port, same store
    for thread in threads:
        thread.join(200)
    elapsed = time.monotonic() - started
    assert load.problems == [], load.problems[:5]
    return _check(database_url, pids, load, elapsed, killed_at)


def _assert_stored(database_url: str, acked: dict[str, int]) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        query = select(CorrectionRecord.idempotency_key, CorrectionRecord.id)
        stored = {key: id_ for key, id_ in conn.execute(query)}
    engine.dispose()
    assert [k for k, i in acked.items() if stored.get(k) != i] == []


def _check(database_url: str, pids: list[str], load: Load, elapsed: float, killed_at) -> dict:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(CorrectionRecord).order_by(CorrectionRecord.id)).all()
        labels = {
            r.prediction_id: {f: getattr(r, f) for f in FIELDS}
            for r in conn.execute(select(PredictionRecord))
        }
    engine.dispose()
    sent = {
        item["idempotency_key"]: item
        for t in range(THREADS)
        for b in range(BATCHES)
        for item in (_item(t, b, i, pids) for i in range(BATCH))
    }
    # A changed reason brings rows of the fields that follow it (category, urgency).
    own = [r for r in rows if r.source != "derived"]
    stored = {r.idempotency_key: r for r in own}
    # every acknowledged correction is there, once, as acknowledged
    assert len(load.acked) == len(sent) == THREADS * BATCHES * BATCH
    assert [k for k, i in load.acked.items() if k not in stored or stored[k].id != i] == []
    assert len(own) == len(stored) == len(sent)  # nothing twice, nothing unasked-for
    assert len({r.comment for r in own}) == len(own)
    assert {r.field for r in rows if r.source == "derived"} <= {"category", "urgency"}
    for key, rec in stored.items():
        item = sent[key]
        assert (rec.prediction_id, rec.field, rec.new_value, rec.operator) == (
            item["prediction_id"],
            item["field"],
            item["value"],
            item["operator"],
        )
    assert max(load.created.values()) == 1  # no key was created twice
    # latest wins under concurrency: each correction's old value is the one before it
    previous: dict[tuple[str, str], str] = {}
    for r in rows:
        at = (r.prediction_id, r.field)
        assert r.old_value == previous.get(at, labels[r.prediction_id][r.field]), r.id
        previous[at] = r.new_value
    figures = {
        "corrections_sent": len(sent),
        "acknowledged": len(load.acked),
        "stored": len(own),
        "derived": len(rows) - len(own),
        "stored_but_answer_lost": sum(1 for k in sent if load.created[k] == 0),
        "requests": load.requests,
        "repeats_on_purpose": load.repeats,
        "requests_without_answer": load.lost,
        "answers_503": load.busy,
        "acknowledged_when_killed": killed_at,
        "seconds": round(elapsed, 1),
    }
    print("\nreliability", json.dumps(figures))
    return figures


@pytest.mark.parametrize("kill", [False, True], ids=["steady", "sigkill"])
def test_every_acknowledged_correction_is_stored_once_sqlite(server_on, tmp_path, dev_texts, kill):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    figures = _run(server_on(url), url, dev_texts, kill_after=3_000 if kill else None)
    assert figures["stored"] == figures["acknowledged"] == THREADS * BATCHES * BATCH


@pytest.mark.parametrize("kill", [False, True], ids=["steady", "sigkill"])
def test_every_acknowledged_correction_is_stored_once_postgresql(
    server_on, pg_store, dev_texts, kill
):
    figures = _run(server_on(pg_store), pg_store, dev_texts, kill_after=3_000 if kill else None)
    assert figures["stored"] == figures["acknowledged"] == THREADS * BATCHES * BATCH
