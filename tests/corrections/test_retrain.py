"""`POST /v1/admin/retrain`: a challenger trained on operator corrections replaces the champion
in service, or, when it crashes or is worse, the champion keeps serving."""

from __future__ import annotations

import hashlib
import threading
import time

from corrections_support import ADM, DEMO, OP, predict

from cur_ml.data import load_appeals
from cur_ml.retrain.loop import RetrainResult
from cur_ml.store import make_engine, upgrade
from cur_ml.store.retrain_runs import RetrainRunRepository

HEADS = ("category", "reason", "urgency", "agency")


def _wait_run(client, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/v1/admin/retrain/{run_id}", headers=ADM)
        assert r.status_code == 200, r.text
        if r.json()["status"] != "running":
            return r.json()
        assert time.monotonic() < deadline, "retrain did not finish in time"
        time.sleep(0.1)


def _version(client) -> str:
    r = client.post("/v1/predict", json={"appeals": [{"text": "Во дворе яма на дороге"}]})
    assert r.status_code == 200
    return r.json()["model_version"]


def _sha(path) -> str:
    return hashlib.sha256((path / "manifest.json").read_bytes()).hexdigest()


def _operators_fix_mistakes(client, n: int = 60) -> int:
    """Predict dev appeals; correct every wrong label to the true one. Returns corrections sent."""
    dev = load_appeals([DEMO], split="dev").frame.head(n)
    preds = predict(client, [{"id": str(i), "text": t} for i, t in enumerate(dev["text"])])
    items = [
        {"prediction_id": p["prediction_id"], "field": h, "value": str(row[h])}
        for p, (_, row) in zip(preds, dev.iterrows(), strict=True)
        for h in HEADS
        if p[h] != row[h]
    ]
    assert items, "the demo model makes some mistakes on dev"
    r = client.post("/v1/corrections", json={"corrections": items}, headers=OP)
    assert r.status_code == 201, r.text
    return len(items)


def test_a_promoted_challenger_is_served_at_once(app_on, served_dir):
    with app_on(model_dir=served_dir, retrain_tolerance=0.01) as client:
        assert _version(client) == "test-a"
        _operators_fix_mistakes(client)
        r = client.post("/v1/admin/retrain", headers=ADM)
        assert r.status_code == 202, r.text
        run = r.json()
        assert (run["status"], run["trigger"]) == ("running", "api")
        done = _wait_run(client, run["id"])
        assert done["status"] == "promoted", done
        result = done["result"]
        assert result["promoted"] and result["operator_rows"] > 0
        assert result["champion_version"] == "test-a"
        new = result["challenger_version"]
        deadline = time.monotonic() + 30  # the job reloads the slot itself (no polling here)
        while _version(client) != new:
            assert time.monotonic() < deadline, "the promoted model is not served"
            time.sleep(0.1)
        assert client.get("/v1/model").json()["model_version"] == new
        runs = client.get("/v1/admin/retrain", headers=ADM).json()["runs"]
        assert runs[0]["id"] == run["id"] and runs[0]["finished_at"]


def test_a_crashing_retrain_leaves_the_champion_serving(app_on, served_dir, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("training exploded")

    monkeypatch.setattr("cur_ml.retrain.loop.train_model", explode)
    before = _sha(served_dir)
    with app_on(model_dir=served_dir) as client:
        _operators_fix_mistakes(client, 20)
        run = client.post("/v1/admin/retrain", headers=ADM).json()
        done = _wait_run(client, run["id"])
        assert done["status"] == "failed"
        assert "training exploded" in done["error"] and done["result"] is None
        assert _version(client) == "test-a"
        assert client.post("/v1/admin/retrain", headers=ADM).status_code == 202  # not stuck
    assert _sha(served_dir) == before


def test_a_worse_challenger_is_rejected_and_logged_to_mlflow(app_on, served_dir, tmp_path):
    """Tolerance -1: any challenger is 'worse'. The one MLflow test (a tmp store)."""
    before = _sha(served_dir)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with app_on(
        model_dir=served_dir,
        retrain_tolerance=-1.0,
        mlflow_enabled=True,
        mlflow_tracking_uri=tracking,
        mlflow_artifact_location=(tmp_path / "mlartifacts").as_uri(),
        mlflow_experiment="cur-ml-test",
    ) as client:
        _operators_fix_mistakes(client, 20)
        run = client.post("/v1/admin/retrain", headers=ADM).json()
        done = _wait_run(client, run["id"], timeout=180)
        assert done["status"] == "rejected", done
        result = done["result"]
        assert not result["promoted"]
        assert any("< champion" in reason for reason in result["reasons"])
        assert _version(client) == "test-a"
    assert _sha(served_dir) == before
    registry = served_dir.parent / "registry" / result["challenger_version"]
    assert (registry / "decision.json").is_file()  # kept, with its decision
    import mlflow

    logged = mlflow.MlflowClient(tracking_uri=tracking).get_run(result["mlflow"]["run_id"])
    assert logged.data.tags["promoted"] == "False"
    assert logged.data.tags["model_version"] == result["challenger_version"]
    assert any(key.startswith("challenger_") for key in logged.data.metrics)


def _fake_result() -> RetrainResult:
    return RetrainResult(
        challenger_version="fake",
        champion_version="test-a",
        promoted=False,
        reasons=["fake"],
        metrics={},
        corrections_applied=0,
        operator_rows=0,
        training_rows=0,
        registry_dir="",
    )


def test_one_retrain_at_a_time(app_on, monkeypatch):
    release = threading.Event()

    def slow(*_args, **_kwargs):
        release.wait(30)
        return _fake_result()

    monkeypatch.setattr("cur_ml.retrain.jobs.run_retrain", slow)
    with app_on() as client:
        first = client.post("/v1/admin/retrain", headers=ADM)
        second = client.post("/v1/admin/retrain", headers=ADM)
        assert (first.status_code, second.status_code) == (202, 409)
        assert second.json()["error"] == "retrain_running"
        assert first.json()["id"] in second.json()["message"]
        release.set()
        assert _wait_run(client, first.json()["id"])["status"] == "rejected"
        assert client.get("/v1/admin/retrain/nope", headers=ADM).status_code == 404


def test_runs_left_running_by_a_dead_process_are_failed_at_start(app_on, served_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    stale = RetrainRunRepository(engine).start("api", 0)
    engine.dispose()
    # A writable copy of the model: the real retrain started below may promote into it, and
    # the session's shared model directory must stay as it is for the tests after this one.
    with app_on(database_url=url, model_dir=served_dir) as client:
        run = client.get(f"/v1/admin/retrain/{stale.id}", headers=ADM).json()
        assert run["status"] == "failed" and "stopped" in run["error"]
        r = client.post("/v1/admin/retrain", headers=ADM)
        assert r.status_code == 202
        assert _wait_run(client, r.json()["id"])["status"] in {"promoted", "rejected"}


def test_an_automatic_retrain_starts_after_n_new_corrections(app_on, monkeypatch):
    monkeypatch.setattr("cur_ml.retrain.jobs.run_retrain", lambda *a, **k: _fake_result())
    with app_on(retrain_after_corrections=3) as client:
        pid = predict(client, [{"text": "Не горит фонарь у дома"}])[0]["prediction_id"]

        def send(key: str) -> int:
            item = {"prediction_id": pid, "field": "reason", "value": key, "idempotency_key": key}
            return client.post(
                "/v1/corrections", json={"corrections": [item]}, headers=OP
            ).status_code

        def runs() -> list[dict]:
            jobs = client.app.state.retrain_jobs
            jobs.wait(10)
            return client.get("/v1/admin/retrain", headers=ADM).json()["runs"]

        assert [send("k1"), send("k2")] == [201, 201] and runs() == []
        assert send("k2") == 200 and runs() == []  # a repeat is not a new correction
        assert send("k3") == 201
        auto = runs()
        assert [r["trigger"] for r in auto] == ["auto"] and auto[0]["corrections_seen"] == 3
        assert send("k4") == 201 and len(runs()) == 1  # counts again from the last run


def test_a_run_of_another_worker_blocks_a_stale_one_does_not(app_on, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from cur_ml.store.retrain_runs import RetrainRun

    monkeypatch.setattr("cur_ml.retrain.jobs.run_retrain", lambda *a, **k: _fake_result())
    with app_on() as client:
        runs = client.app.state.retrain_jobs.runs
        other = runs.start("api", 0)  # a sibling worker's run, in progress
        r = client.post("/v1/admin/retrain", headers=ADM)
        assert r.status_code == 409 and other.id in r.json()["message"]
        with runs.engine.begin() as conn:  # ... that has been "running" for seven hours
            conn.execute(
                update(RetrainRun)
                .where(RetrainRun.id == other.id)
                .values(started_at=datetime.now(UTC) - timedelta(hours=7))
            )
        r = client.post("/v1/admin/retrain", headers=ADM)
        assert r.status_code == 202
        assert _wait_run(client, r.json()["id"])["status"] == "rejected"
