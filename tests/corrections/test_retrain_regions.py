"""A retrain job belongs to a region: it retrains that region's model from that region's base
data and corrections, and moves only `cur-ml-<region>` in the registry."""

from __future__ import annotations

import shutil
from pathlib import Path

from corrections_support import settings_for

from cur_ml.data import load_appeals
from cur_ml.model import load_model
from cur_ml.model.training import train_model
from cur_ml.retrain.worker import Worker
from cur_ml.store import make_engine, upgrade

DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def test_a_krd_job_retrains_krd_alone(tmp_path, model_a_dir):
    import mlflow

    models = tmp_path / "models"
    shutil.copytree(model_a_dir, models / "spb")
    spb_before = (models / "spb" / "manifest.json").read_bytes()
    krd = train_model(load_appeals([DATASETS / "demo_krd" / "appeals.csv"], split="train"))
    krd.save(models / "krd")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = settings_for(
        tmp_path,
        models / "{region}",
        regions=["spb", "krd"],
        base_data=[DATASETS / "demo_{region}" / "appeals.csv"],
        mlflow_enabled=True,
        mlflow_tracking_uri=tracking,
        mlflow_artifact_location=(tmp_path / "mlartifacts").as_uri(),
        mlflow_experiment="cur-ml-test",
    )
    engine = make_engine(settings.database_url)
    upgrade(engine)
    done = Worker(settings, engine).run_now("cli", {"allow_no_match": True}, region="krd")
    engine.dispose()
    assert done.region == "krd" and done.status in ("promoted", "rejected"), done.error
    challenger = load_model(models / "registry" / done.result["challenger_version"])
    # Trained on krd's base data: krd's agencies, none of spb's.
    krd_agencies = set(krd.label_sets()["agency"])
    assert set(challenger.label_sets()["agency"]) <= krd_agencies
    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    names = {m.name for m in client.search_registered_models()}
    assert names == {"cur-ml-krd"}  # spb's model was never touched
    assert (models / "spb" / "manifest.json").read_bytes() == spb_before
