"""When the store cannot write, the service says so and acknowledges nothing.

`/readyz` answers 503 `store_unavailable` and `POST /v1/predict` 503 `store_unavailable`
while the SQLite file is gone (moved away, deleted) or the PostgreSQL server cannot be reached
(a TCP proxy between them is cut); both are ready again once the store is back, and every
prediction answered 2xx is in the store.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from app_support import PG_URL, fresh_schema, reachable
from sqlalchemy import select
from sqlalchemy.engine import make_url

from cur_ml.store import PredictionRecord, StoreHealth, make_engine, upgrade

FAST = {"store_check_seconds": 0.1}  # re-probe the store often: the tests wait less


# --------------------------------------------------------------------------- helpers
def _until(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)
    return result


def _readyz(client, status: int):
    r = client.get("/readyz")
    return r if r.status_code == status else None


def _predict(client, texts: list[str]):
    appeals = [{"id": i, "text": t} for i, t in enumerate(texts)]
    return client.post("/v1/predict", json={"appeals": appeals}, params={"explain": False})


def _acknowledged(client, texts: list[str]) -> list[str]:
    r = _predict(client, texts)
    assert r.status_code == 200, r.text
    return [p["prediction_id"] for p in r.json()["predictions"]]


def _stored(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(PredictionRecord.prediction_id)))
    finally:
        engine.dispose()


def _assert_unavailable(client, texts: list[str], secrets: list[str]) -> None:
    """/readyz and predict both 503 `store_unavailable`; neither names the store."""
    r = _until(lambda: _readyz(client, 503), what="/readyz 503")
    assert r.json() == {
        "status": "store_unavailable",
        "model_version": "test-a",
        "detail": "the store cannot record predictions",
    }
    for batch in (texts[:1], texts):
        p = _predict(client, batch)
        assert p.status_code == 503, p.text
        assert p.json()["error"] == "store_unavailable"
        assert "predictions" not in p.json()
        assert int(p.headers["Retry-After"]) >= 1
        for body in (r.text, p.text):
            assert not any(s in body for s in secrets), body


def _sqlite(tmp_path: Path) -> tuple[Path, str]:
    """The store file `app_factory` gives an app, and its URL."""
    db = tmp_path / "store.sqlite3"
    return db, f"sqlite:///{db}"


# --------------------------------------------------------------------------- SQLite
def test_sqlite_file_moved_away_and_back(app_factory, model_a_dir, tmp_path, dev_texts):
    db, url = _sqlite(tmp_path)
    with app_factory(model_a_dir, **FAST) as client:
        acked = _acknowledged(client, dev_texts[:3])
        away = tmp_path / "elsewhere.sqlite3"
        db.rename(away)
        _assert_unavailable(client, dev_texts[3:9], [str(tmp_path), "sqlite"])
        assert not db.exists()  # nothing created an empty store in its place
        away.rename(db)
        assert _until(lambda: _readyz(client, 200), what="ready").json()["status"] == "ready"
        acked += _acknowledged(client, dev_texts[9:14])
        assert client.app.state.writer.flush(10)
    assert _stored(url) == set(acked)


def test_sqlite_file_deleted_then_restored_from_a_copy(
    app_factory, model_a_dir, tmp_path, dev_texts
):
    db, url = _sqlite(tmp_path)
    with app_factory(model_a_dir, **FAST) as client:
        acked = _acknowledged(client, dev_texts[:4])
        assert client.app.state.writer.flush(10)
        engine = client.app.state.writer.repository.engine
        with engine.connect() as conn:  # the backup holds everything (the WAL is empty)
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        backup = tmp_path / "backup.sqlite3"
        shutil.copy2(db, backup)
        db.unlink()  # open connections would go on writing into the unlinked file
        _assert_unavailable(client, dev_texts[4:8], [str(tmp_path), "sqlite"])
        assert not db.exists()
        shutil.copy2(backup, db)  # another file (inode): connections are reopened on it
        _until(lambda: _readyz(client, 200), what="ready")
        acked += _acknowledged(client, dev_texts[8:12])
        assert client.app.state.writer.flush(10)
    assert _stored(url) == set(acked)


def test_a_commit_into_a_deleted_file_is_not_acknowledged(
    app_factory, model_a_dir, tmp_path, dev_texts
):
    """The route's check still trusts its cached verdict (long ttl): the commit is refused
    and the answer is 503 `store_unavailable` all the same."""
    db, _url = _sqlite(tmp_path)
    with app_factory(model_a_dir, store_check_seconds=600) as client:
        acked = _acknowledged(client, dev_texts[:2])
        health = client.app.state.store_health
        assert health.fresh and health.available
        db.unlink()
        r = _predict(client, dev_texts[2:5])
        assert r.status_code == 503 and r.json()["error"] == "store_unavailable", r.text
        assert not health.available  # the writer told it
        assert client.get("/readyz").status_code == 503
        assert client.app.state.writer.written == len(acked)
    assert not db.exists()


def test_no_2xx_without_its_rows_while_the_file_comes_and_goes(
    app_factory, model_a_dir, tmp_path, dev_texts
):
    db, url = _sqlite(tmp_path)
    acked: list[str] = []
    codes: Counter = Counter()
    lock, stop = threading.Lock(), threading.Event()

    def caller(client, size: int) -> None:
        i = 0
        while not stop.is_set():
            texts = [dev_texts[(i + k) % len(dev_texts)] for k in range(size)]
            i += size
            r = _predict(client, texts)
            with lock:
                codes[(r.status_code, r.json().get("error"))] += 1
                if r.status_code == 200:
                    acked.extend(p["prediction_id"] for p in r.json()["predictions"])

    with app_factory(model_a_dir, store_check_seconds=0.05) as client:
        threads = [threading.Thread(target=caller, args=(client, n)) for n in (1, 1, 5, 20)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        away = tmp_path / "elsewhere.sqlite3"
        for _ in range(3):
            db.rename(away)
            time.sleep(1.5)  # longer than the writer retries a batch (then: 503)
            away.rename(db)
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert client.app.state.writer.flush(10)
    assert set(codes) <= {(200, None), (503, "store_unavailable")}, codes
    assert codes[(200, None)] > 0 and codes[(503, "store_unavailable")] > 0, codes
    assert set(acked) <= _stored(url)


def test_the_verdict_is_cached_for_ttl_seconds(tmp_path):
    db, url = _sqlite(tmp_path)
    engine = make_engine(url)
    upgrade(engine)
    health = StoreHealth(engine, ttl=600)
    assert health.check()
    db.rename(tmp_path / "elsewhere.sqlite3")
    assert health.check()  # within its ttl: no stat, no query
    health.ttl = 0
    assert not health.check()
    assert "missing" in (health.reason or "")
    (tmp_path / "elsewhere.sqlite3").rename(db)
    assert health.check() and health.reason is None
    engine.dispose()


# --------------------------------------------------------------------------- PostgreSQL
class TcpProxy:
    """127.0.0.1:`port` → `target`. `cut()` closes the listener and every connection, as if
    the server were gone; `restore()` listens on the same port again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR on POSIX
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            doomed = [self._listener, *self._sockets] if self._listener else self._sockets
            self._listener, self._sockets = None, []
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                if listener.fileno() == -1:
                    return
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def pg_behind_proxy() -> Iterator[tuple[TcpProxy, str, str]]:
    """(proxy, URL straight to a fresh schema, URL to it through the proxy)."""
    why = reachable(PG_URL)
    if why is not None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({why}); set CUR_ML_TEST_POSTGRES_URL")
    with fresh_schema(PG_URL) as direct:
        parsed = make_url(direct)
        proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        proxied = parsed.set(host="127.0.0.1", port=proxy.port)
        try:
            yield proxy, direct, proxied.render_as_string(hide_password=False)
        finally:
            proxy.cut()


def test_postgresql_unreachable_then_back(app_factory, model_a_dir, dev_texts, pg_behind_proxy):
    proxy, direct, proxied = pg_behind_proxy
    with app_factory(model_a_dir, database_url=proxied, **FAST) as client:
        acked = _acknowledged(client, dev_texts[:3])
        proxy.cut()
        secrets = [str(proxy.port), "postgres", "127.0.0.1", "cur_ml_test_"]
        _assert_unavailable(client, dev_texts[3:9], secrets)
        proxy.restore()
        assert _until(lambda: _readyz(client, 200), what="ready").json()["status"] == "ready"
        acked += _acknowledged(client, dev_texts[9:14])
        assert client.app.state.writer.flush(10)
        # Once more, while requests were answered meanwhile: the pool recovers every time.
        proxy.cut()
        _assert_unavailable(client, dev_texts[14:16], secrets)
        proxy.restore()
        _until(lambda: _readyz(client, 200), what="ready again")
        acked += _acknowledged(client, dev_texts[16:18])
    assert _stored(direct) == set(acked)
