"""`POST /v1/admin/retrain` only queues; a worker process trains, judges and promotes. A
promoted challenger reaches the service through the model directory; a crash or a
rejection leaves the champion serving."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from corrections_support import ADM, DEMO, OP, predict
from sqlalchemy import update

from cur_ml.data import load_appeals
from cur_ml.retrain import gate
from cur_ml.retrain.worker import Worker
from cur_ml.store import make_engine, upgrade
from cur_ml.store.retrain_runs import RetrainRun, RetrainRunRepository

HEADS = ("category", "reason", "urgency", "agency")


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
        for h in ("reason", "agency")  # category and urgency follow a corrected reason
        if p[h] != row[h]
    ]
    assert items, "the demo model makes some mistakes on dev"
    r = client.post("/v1/corrections", json={"corrections": items}, headers=OP)
    assert r.status_code == 201, r.text
    return len(items)


def _gate_says(monkeypatch, promote: bool) -> None:
    """The real gate's tests, with the verdict fixed: these tests are about the flow around
    it (the verdicts themselves are tested in test_gate.py)."""
    real = gate.decide

    def fixed(*args, **kwargs):
        decision = real(*args, **kwargs)
        word = "promoted" if promote else "rejected"
        return replace(
            decision,
            promote=promote,
            reasons_en=[f"{word} (fixed by the test)", *decision.reasons_en[1:]],
            reasons_ru=[f"{word} (задано тестом)", *decision.reasons_ru[1:]],
        )

    monkeypatch.setattr("cur_ml.retrain.loop.decide", fixed)


def _work(client) -> RetrainRun | None:
    """What `cur-ml worker --once` does, on the app's settings and store."""
    jobs = client.app.state.retrain_jobs
    return Worker(client.app.state.settings, jobs.engine, name="test-worker").run_once()


def test_the_api_queues_a_worker_promotes_and_the_service_serves_it(
    app_on, served_dir, monkeypatch
):
    _gate_says(monkeypatch, promote=True)
    with app_on(model_dir=served_dir, base_data=[DEMO], model_poll_seconds=0.1) as client:
        assert _version(client) == "test-a"
        _operators_fix_mistakes(client)
        r = client.post("/v1/admin/retrain", headers=ADM)
        assert r.status_code == 202, r.text
        run = r.json()
        assert (run["status"], run["trigger"], run["worker"]) == ("queued", "api", None)
        busy = client.post("/v1/admin/retrain", headers=ADM)
        assert busy.status_code == 409 and run["id"] in busy.json()["message"]
        time.sleep(0.3)
        assert _version(client) == "test-a"  # the API itself trains nothing
        done = _work(client)
        assert done.id == run["id"] and done.status == "promoted", done.error
        result = done.result
        assert result["champion_version"] == "test-a" and result["operator_rows"] > 0
        assert result["champion_source"] == "directory"  # MLflow off: the directory
        assert result["changed"]["reason"] + result["changed"]["agency"] > 0
        assert result["reasons_ru"][0] == "promoted (задано тестом)"
        assert {t["metric"] for t in result["gate"]["tests"]} == {
            "accuracy",
            "macro_f1",
            "recall_high",
        }
        new = result["challenger_version"]
        deadline = time.monotonic() + 30  # the service sees the refreshed directory
        while _version(client) != new:
            assert time.monotonic() < deadline, "the promoted model is not served"
            time.sleep(0.1)
        assert client.get("/v1/model").json()["model_version"] == new
        runs = client.get("/v1/admin/retrain", headers=ADM).json()["runs"]
        assert runs[0]["id"] == run["id"] and runs[0]["finished_at"]
        assert client.post("/v1/admin/retrain", headers=ADM).status_code == 202  # idle again


def test_a_crashing_retrain_leaves_the_champion_serving(app_on, served_dir, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("training exploded")

    monkeypatch.setattr("cur_ml.retrain.loop.train_model", explode)
    before = _sha(served_dir)
    with app_on(model_dir=served_dir, base_data=[DEMO]) as client:
        _operators_fix_mistakes(client, 20)
        run = client.post("/v1/admin/retrain", headers=ADM).json()
        done = _work(client)
        assert done.id == run["id"] and done.status == "failed"
        assert "training exploded" in done.error and done.result is None
        shown = client.get(f"/v1/admin/retrain/{run['id']}", headers=ADM).json()
        assert shown["status"] == "failed" and "training exploded" in shown["error"]
        assert _version(client) == "test-a"
        assert client.post("/v1/admin/retrain", headers=ADM).status_code == 202  # not stuck
    assert _sha(served_dir) == before


def test_a_rejected_challenger_is_recorded_in_the_registry_and_not_served(
    app_on, served_dir, tmp_path, monkeypatch
):
    """The one MLflow test of the flow (a scratch store in tmp_path)."""
    _gate_says(monkeypatch, promote=False)
    before = _sha(served_dir)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with app_on(
        model_dir=served_dir,
        base_data=[DEMO],
        mlflow_enabled=True,
        mlflow_tracking_uri=tracking,
        mlflow_artifact_location=(tmp_path / "mlartifacts").as_uri(),
        mlflow_experiment="cur-ml-test",
    ) as client:
        _operators_fix_mistakes(client, 20)
        client.post("/v1/admin/retrain", headers=ADM)
        done = _work(client)
        assert done.status == "rejected", done.error
        result = done.result
        assert not result["promoted"] and result["reasons"][0] == "rejected (fixed by the test)"
        assert _version(client) == "test-a"
    assert _sha(served_dir) == before
    registry = served_dir.parent / "registry" / result["challenger_version"]
    assert (registry / "decision.json").is_file()  # kept, with its decision
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    version = client.get_model_version("cur-ml-spb", result["mlflow"]["registered_version"])
    assert version.tags["decision"] == "rejected"
    ru = version.tags["reasons_ru"].split("\n")
    assert ru[0] == "rejected (задано тестом)"
    assert ru[1].startswith("чемпион обучался на")  # test-a trained on the holdout
    assert ru[2].startswith("категория: точность")
    assert "gate_urgency_recall_high_ci" in version.tags
    assert client.get_model_version_by_alias("cur-ml-spb", "challenger").version == version.version
    assert "champion" not in client.get_registered_model("cur-ml-spb").aliases
    logged = client.get_run(result["mlflow"]["run_id"])
    assert logged.data.tags["promoted"] == "False"
    assert logged.data.tags["model_version"] == result["challenger_version"]
    assert logged.data.params["base_data_sha256"] == result["base_data"]["sha256"]
    assert int(logged.data.params["changed_reason"]) == result["changed"]["reason"]
    assert "reason_accuracy" in logged.data.metrics  # one name per number


def test_jobs_of_a_dead_worker_are_failed_at_start_live_ones_are_not(app_on, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    runs = RetrainRunRepository(engine)
    dead = runs.start("api", 0, worker="w-dead")
    alive = runs.start("api", 0, worker="w-alive")
    with engine.begin() as conn:  # the dead worker's last heartbeat: an hour ago
        conn.execute(
            update(RetrainRun)
            .where(RetrainRun.id == dead.id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
        )
    engine.dispose()
    with app_on(database_url=url) as client:
        shown = client.get(f"/v1/admin/retrain/{dead.id}", headers=ADM).json()
        assert shown["status"] == "failed" and "w-dead stopped" in shown["error"]
        live = client.get(f"/v1/admin/retrain/{alive.id}", headers=ADM).json()
        assert (live["status"], live["worker"]) == ("running", "w-alive")  # still beating
        busy = client.post("/v1/admin/retrain", headers=ADM)
        assert busy.status_code == 409 and alive.id in busy.json()["message"]


def test_an_automatic_retrain_is_queued_after_n_new_corrections(app_on):
    with app_on(retrain_after_corrections=3) as client:
        pid = predict(client, [{"text": "Не горит фонарь у дома"}])[0]["prediction_id"]

        def send(key: str) -> int:
            value = {"k1": "Кровля", "k2": "Фасад", "k3": "Подвалы", "k4": "Водоснабжение"}[key]
            item = {
                "prediction_id": pid,
                "field": "category",
                "value": value,
                "idempotency_key": key,
            }
            return client.post(
                "/v1/corrections", json={"corrections": [item]}, headers=OP
            ).status_code

        def runs() -> list[dict]:
            return client.get("/v1/admin/retrain", headers=ADM).json()["runs"]

        assert [send("k1"), send("k2")] == [201, 201] and runs() == []
        assert send("k2") == 200 and runs() == []  # a repeat is not a new correction
        assert send("k3") == 201
        auto = runs()
        assert [(r["trigger"], r["status"]) for r in auto] == [("auto", "queued")]
        assert auto[0]["corrections_seen"] == 3
        assert send("k4") == 201 and len(runs()) == 1  # one queued job is enough
