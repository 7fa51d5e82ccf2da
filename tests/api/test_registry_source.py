"""The service can serve `models:/cur-ml-spb@champion` and follows the alias on reload."""

from __future__ import annotations

from cur_ml.model import load_model
from cur_ml.tracking import record_run


def test_serves_the_champion_alias_and_follows_it(
    tmp_path, model_a_dir, model_b_dir, settings_for, start
):
    settings = settings_for(
        tmp_path,
        tmp_path / "unused",
        model_uri="models:/cur-ml-spb@champion",
        admin_token="admin-token-0123456789abcdef",
        mlflow_enabled=True,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        mlflow_artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    first, second = load_model(model_a_dir), load_model(model_b_dir)
    record_run(
        settings,
        kind="train",
        model=first,
        model_dir=model_a_dir,
        metrics={},
        aliases=("champion",),
    )
    with start(settings) as client:
        assert client.get("/readyz").json()["model_version"] == first.version
        # A retrain elsewhere moves the alias; a reload follows it.
        record_run(
            settings,
            kind="retrain",
            model=second,
            model_dir=model_b_dir,
            metrics={},
            aliases=("champion",),
        )
        reloaded = client.post(
            "/v1/admin/reload", headers={"Authorization": "Bearer admin-token-0123456789abcdef"}
        )
        assert reloaded.status_code == 200, reloaded.text
        answer = client.post("/v1/predict", json={"appeals": [{"text": "Не работает лифт"}]})
        assert answer.json()["model_version"] == second.version
