"""Hot model swap: a new model is loaded beside the old one and switched in one assignment;
requests in flight finish on the old model and not one request fails."""

from __future__ import annotations

import threading
import time

from cur_ml.model.bundle import MODEL_FILE, read_manifest, write_signed_manifest
from cur_ml.model.signing import model_key
from cur_ml.settings import Settings

ADMIN_TOKEN = "a-secret-0123456789abcdefgh"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Hammer:
    """Threads posting to /v1/predict until stopped; records (status, model_version) in order."""

    def __init__(self, client, texts: list[str], threads: int = 4) -> None:
        self.client, self.texts = client, texts
        self.stop = threading.Event()
        self.results: list[list[tuple[int, str | None]]] = [[] for _ in range(threads)]
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        n = 0
        while not self.stop.is_set():
            batch = [{"id": n, "text": self.texts[(i * 7 + n) % len(self.texts)]}] * (1 + n % 3)
            n += 1
            try:
                r = self.client.post("/v1/predict", json={"appeals": batch})
                body = r.json()
                versions = {p["model_version"] for p in body.get("predictions", [])}
                ok = r.status_code == 200 and versions == {body["model_version"]}
                self.results[i].append((r.status_code if ok else -1, body.get("model_version")))
            except Exception as exc:  # a failed request is exactly what this test looks for
                self.results[i].append((-2, repr(exc)))

    def __enter__(self) -> Hammer:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def check(self, old: str, new: str) -> None:
        flat = [r for per_thread in self.results for r in per_thread]
        assert len(flat) >= 20, f"only {len(flat)} requests were made"
        failures = [r for r in flat if r[0] != 200]
        assert not failures, failures[:5]
        for per_thread in self.results:  # each thread sees old ... old new ... new, never back
            versions = [v for _, v in per_thread]
            assert set(versions) <= {old, new}
            switched = versions.index(new) if new in versions else len(versions)
            assert all(v == new for v in versions[switched:]), versions
        seen = {v for _, v in flat}
        assert seen == {old, new}, seen


def test_reload_under_concurrent_requests(
    app_factory, served_dir, model_b_dir, dev_texts, replace_model
):
    with app_factory(served_dir, admin_token=ADMIN_TOKEN) as client:
        with Hammer(client, dev_texts) as hammer:
            time.sleep(0.5)
            replace_model(model_b_dir, served_dir)
            r = client.post("/v1/admin/reload", headers=ADMIN)
            assert r.status_code == 200, r.text
            assert r.json() == {
                "previous_version": "test-a",
                "model_version": "test-b",
                "changed": True,
            }
            time.sleep(0.5)
        hammer.check("test-a", "test-b")
        assert client.get("/v1/model").json()["model_version"] == "test-b"
        metrics = client.get("/metrics").text
        assert 'cur_ml_model_info{version="test-b"} 1.0' in metrics
        assert 'version="test-a"' not in metrics


def test_manifest_change_is_picked_up_by_the_watcher(
    app_factory, served_dir, model_b_dir, dev_texts, replace_model
):
    with app_factory(served_dir, model_poll_seconds=0.1) as client:
        with Hammer(client, dev_texts, threads=3) as hammer:
            time.sleep(0.4)
            replace_model(model_b_dir, served_dir)
            deadline = time.monotonic() + 20
            while client.get("/v1/model").json()["model_version"] != "test-b":
                assert time.monotonic() < deadline, "the watcher did not reload"
                time.sleep(0.05)
            time.sleep(0.4)
        hammer.check("test-a", "test-b")


def test_a_broken_model_is_refused_and_the_old_one_kept(app_factory, served_dir, dev_texts):
    with app_factory(served_dir, admin_token=ADMIN_TOKEN, model_poll_seconds=0.1) as client:
        (served_dir / MODEL_FILE).write_bytes(b"not a model")
        # A signed manifest (of another version) whose file does not match it.
        manifest = {**read_manifest(served_dir), "version": "test-c"}
        write_signed_manifest(served_dir, manifest, model_key(Settings()))
        r = client.post("/v1/admin/reload", headers=ADMIN)
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "model_load_failed"
        assert "does not match its manifest" in r.json()["message"]
        time.sleep(0.3)  # the watcher saw it too, and also kept the old model
        r = client.post("/v1/predict", json={"appeals": [{"text": dev_texts[0]}]})
        assert r.status_code == 200 and r.json()["model_version"] == "test-a"
        assert client.get("/readyz").status_code == 200
        assert 'cur_ml_model_loads_total{outcome="failed"}' in client.get("/metrics").text


def test_not_ready_until_a_model_is_loaded(tmp_path, settings_for):
    from fastapi.testclient import TestClient

    from cur_ml.api.main import create_app

    app = create_app(settings_for(tmp_path, tmp_path / "no-model-here"))
    with TestClient(app) as client:
        for _ in range(100):
            if app.state.slot.error:
                break
            time.sleep(0.02)
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "failed"
        r = client.post("/v1/predict", json={"appeals": [{"text": "Яма"}]})
        assert r.status_code == 503 and r.json()["error"] == "model_unavailable"
        assert r.headers["retry-after"] == "1"
