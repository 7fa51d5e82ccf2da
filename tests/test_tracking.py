"""Every train / evaluate run leaves an MLflow record; the model is registered and aliased."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-c", "from cur_ml.cli import main; main()"]


@pytest.fixture()
def mlflow_env(tmp_path):
    env = dict(
        os.environ,
        CUR_ML_MLFLOW_ENABLED="true",
        CUR_ML_MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        CUR_ML_MLFLOW_ARTIFACT_LOCATION=(tmp_path / "artifacts").as_uri(),
    )
    return env


def test_train_and_evaluate_are_recorded(demo_path, tmp_path, mlflow_env):
    out = tmp_path / "model"
    train = subprocess.run(
        [
            *CLI,
            "train",
            "--data",
            str(demo_path),
            "--split",
            "train",
            "--eval-split",
            "dev",
            "--out",
            str(out),
        ],
        env=mlflow_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    summary = json.loads(train.stdout)
    assert summary["mlflow"]["registered_version"] == "1"
    evaluate = subprocess.run(
        [*CLI, "evaluate", "--model", str(out), "--data", str(demo_path), "--split", "dev"],
        env=mlflow_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluate.returncode == 0, evaluate.stderr

    import mlflow

    uri = mlflow_env["CUR_ML_MLFLOW_TRACKING_URI"]
    # Set both: earlier tests in this process may have pointed the registry elsewhere.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    runs = mlflow.search_runs(experiment_names=["cur-ml"], output_format="list")
    kinds = sorted(r.data.tags["kind"] for r in runs)
    assert kinds == ["evaluate"] * 4 + ["train"]  # one evaluate run per input profile
    profiles = {r.data.tags.get("profile") for r in runs if r.data.tags["kind"] == "evaluate"}
    assert profiles == {"portal", "geo", "text", "social"}
    trained = next(r for r in runs if r.data.tags["kind"] == "train")
    assert (
        trained.data.tags["data_sha256"]
        == json.loads((out / "manifest.json").read_text())["data"]["sha256"]
    )
    assert trained.data.metrics["reason_accuracy"] > 0.5
    assert trained.data.tags["git_commit"]
    # One name for one number: train and evaluate log the same keys; split and profile are tags.
    portal = next(r for r in runs if r.data.tags.get("profile") == "portal" and r is not trained)
    assert set(trained.data.metrics) == set(portal.data.metrics)
    assert {"reason_accuracy", "agency_macro_f1", "urgency_recall_high"} <= set(portal.data.metrics)
    assert trained.data.metrics["reason_accuracy"] == portal.data.metrics["reason_accuracy"]
    assert (trained.data.tags["split"], trained.data.tags["profile"]) == ("dev", "portal")
    assert portal.data.tags["split"] == "dev"
    # The data sets are inputs of the runs, with their hashes.
    contexts = {
        d.dataset.name: {t.key: t.value for t in d.tags} for d in trained.inputs.dataset_inputs
    }
    assert contexts["appeals@train"]["mlflow.data.context"] == "train"
    assert contexts["appeals@train"]["sha256"] == trained.data.tags["data_sha256"]
    assert contexts["appeals@dev"]["rows"] == str(int(portal.data.metrics["n"]))
    assert [d.dataset.name for d in portal.inputs.dataset_inputs] == ["appeals@dev"]
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    artifacts = {a.path for a in client.list_artifacts(trained.info.run_id)}
    assert {"report", "manifest.json"} <= artifacts
    # The model itself is a registered pyfunc made by this run (MLflow 3 keeps it as a
    # logged model beside the run's artifacts).
    assert client.get_model_version("cur-ml-spb", "1").run_id == trained.info.run_id
    report = {a.path for a in client.list_artifacts(trained.info.run_id, "report")}
    assert {"report/confusion_reason.png", "report/predictions.csv"} <= report
    # Every evaluation is linked to the registered version it judged.
    version = client.get_model_version("cur-ml-spb", "1")
    assert portal.data.tags["registered_version"] == "1"
    assert version.tags["evaluation_dev_portal"] == portal.info.run_id
    assert json.loads(evaluate.stdout)["predictions"].endswith("portal/predictions.csv")


def test_the_pyfunc_refuses_input_without_text(demo_model, tmp_path, mlflow_env):
    """The signature names the appeal's fields: unknown-only columns are an error, not a guess."""
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from cur_ml.settings import Settings
    from cur_ml.tracking import log_run

    settings = Settings(
        mlflow_enabled=True,
        mlflow_tracking_uri=mlflow_env["CUR_ML_MLFLOW_TRACKING_URI"],
        mlflow_artifact_location=mlflow_env["CUR_ML_MLFLOW_ARTIFACT_LOCATION"],
    )
    run = log_run(
        settings,
        kind="train",
        model=demo_model,
        model_dir=demo_model.save(tmp_path / "m"),
        metrics={},
    )
    uri = f"models:/cur-ml-spb/{run['registered_version']}"
    info = mlflow.models.get_model_info(uri)
    assert info.signature.inputs.input_names()[0] == "text"
    assert info.saved_input_example_info is not None
    pyfunc = mlflow.pyfunc.load_model(uri)
    answer = pyfunc.predict(pd.DataFrame([{"id": 7, "text": "Не работает лифт", "lat": 60}]))
    assert answer.loc[0, "id"] == 7 and answer.loc[0, "reason"]
    with pytest.raises(MlflowException, match="text"):
        pyfunc.predict(pd.DataFrame([{"txt": "лифт"}]))
    with pytest.raises(MlflowException, match="non-empty"):
        pyfunc.predict(pd.DataFrame([{"text": "лифт"}, {"text": "  "}]))


def test_champion_alias_resolves_to_a_loadable_model(demo_model, tmp_path, mlflow_env):
    from cur_ml.model import load_model
    from cur_ml.settings import Settings
    from cur_ml.tracking import record_run, resolve_model_source

    settings = Settings(
        mlflow_enabled=True,
        mlflow_tracking_uri=mlflow_env["CUR_ML_MLFLOW_TRACKING_URI"],
        mlflow_artifact_location=mlflow_env["CUR_ML_MLFLOW_ARTIFACT_LOCATION"],
    )
    directory = demo_model.save(tmp_path / "m")
    run = record_run(
        settings,
        kind="train",
        model=demo_model,
        model_dir=directory,
        metrics={},
        aliases=("champion",),
    )
    assert run["registered_version"]
    loaded = load_model(resolve_model_source("models:/cur-ml-spb@champion", settings))
    assert loaded.version == demo_model.version


def test_the_pyfunc_verifies_the_model_with_the_key_of_its_environment(
    demo_model, tmp_path, mlflow_env, monkeypatch
):
    """`mlflow models serve` loads through `load_context`: a server whose CUR_ML_MODEL_KEY is
    not the key that signed the model refuses it before unpickling."""
    import mlflow
    import pandas as pd

    from cur_ml.errors import ModelSignatureError
    from cur_ml.settings import Settings
    from cur_ml.tracking import log_run

    settings = Settings(
        mlflow_enabled=True,
        mlflow_tracking_uri=mlflow_env["CUR_ML_MLFLOW_TRACKING_URI"],
        mlflow_artifact_location=mlflow_env["CUR_ML_MLFLOW_ARTIFACT_LOCATION"],
    )
    run = log_run(
        settings,
        kind="train",
        model=demo_model,
        model_dir=demo_model.save(tmp_path / "m"),
        metrics={},
    )
    uri = f"models:/cur-ml-spb/{run['registered_version']}"
    assert mlflow.pyfunc.load_model(uri).predict(pd.DataFrame([{"text": "Яма во дворе"}])).shape[0]
    monkeypatch.setenv("CUR_ML_MODEL_KEY", "another-deployment-key-0123456789abcdef")
    with pytest.raises(ModelSignatureError, match="does not verify"):
        mlflow.pyfunc.load_model(uri)
