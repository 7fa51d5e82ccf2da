"""One champion: the registry alias, with the model directory as its cache (MLflow on, a
scratch tracking store in tmp_path)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import pytest
from corrections_support import DEMO, settings_for
from tamper_support import plant

from cur_ml.errors import ModelIntegrityError, ModelSignatureError
from cur_ml.model import load_model
from cur_ml.model.bundle import read_manifest, write_signed_manifest
from cur_ml.model.signing import model_key
from cur_ml.retrain import gate
from cur_ml.retrain.champion import load_champion, registered, resolve_source
from cur_ml.retrain.jobs import run_retrain
from cur_ml.settings import Settings
from cur_ml.store import make_engine, upgrade
from cur_ml.tracking import record_run, set_alias


def _manifest_version(directory) -> str:
    return json.loads((directory / "manifest.json").read_text())["version"]


@pytest.fixture
def registry(tmp_path, model_a_dir):
    """Settings on a scratch MLflow store whose `champion` is model test-a (version 1); the
    model directory (the cache) starts empty."""
    settings = settings_for(
        tmp_path,
        tmp_path / "models" / "default",
        base_data=[DEMO],
        mlflow_enabled=True,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        mlflow_artifact_location=(tmp_path / "mlartifacts").as_uri(),
        mlflow_experiment="cur-ml-test",
    )
    run = record_run(
        settings,
        kind="train",
        model=load_model(model_a_dir),
        model_dir=model_a_dir,
        metrics={},
        aliases=("champion",),
    )
    assert run["registered_version"] == "1", run
    return settings


def _other_model(model_a_dir, target, version: str):
    """A copy of test-a under another version (signed again): a different model for the
    cache's sake."""
    shutil.copytree(model_a_dir, target)
    manifest = {**read_manifest(target), "version": version}
    write_signed_manifest(target, manifest, model_key(Settings()))
    return target


def test_without_mlflow_the_directory_is_the_champion(tmp_path, served_dir):
    settings = settings_for(tmp_path, served_dir, mlflow_enabled=False)
    champion = load_champion(settings)
    assert (champion.source, champion.model.version) == ("directory", "test-a")
    assert registered(settings) is None


def test_the_alias_wins_over_a_stale_directory(registry, model_a_dir):
    # The directory holds another model (a demo run wrote there): the alias decides.
    _other_model(model_a_dir, registry.model_dir, "stale-demo")
    champion = load_champion(registry)
    assert (champion.source, champion.registered_version) == ("registry", "1")
    assert champion.model.version == "test-a"
    assert _manifest_version(registry.model_dir) == "test-a"  # the cache was refreshed
    mtime = (registry.model_dir / "manifest.json").stat().st_mtime_ns
    assert load_champion(registry).model.version == "test-a"
    assert (registry.model_dir / "manifest.json").stat().st_mtime_ns == mtime  # no download


def test_a_promotion_moves_the_alias_and_the_cache(registry, monkeypatch):
    real = gate.decide
    monkeypatch.setattr(
        "cur_ml.retrain.loop.decide", lambda *a, **k: replace(real(*a, **k), promote=True)
    )
    engine = make_engine(registry.database_url)
    upgrade(engine)
    result = run_retrain(registry, engine, {"allow_no_match": True})
    engine.dispose()
    assert result.promoted and result.champion_source == "registry"
    assert (result.champion_version, result.champion_registered_version) == ("test-a", "1")
    new = result.mlflow["registered_version"]
    assert str(registered(registry).version) == new == "2"
    assert str(registered(registry, "challenger").version) == "2"
    assert _manifest_version(registry.model_dir) == result.challenger_version
    # `models:/cur-ml-spb@champion` and the directory name the same model.
    assert _manifest_version(resolve_source("models:/cur-ml-spb@champion", registry)) == (
        result.challenger_version
    )


def test_the_service_follows_the_alias(registry, model_a_dir, tmp_path):
    """CUR_ML_MODEL_URI=models:/cur-ml-spb@champion: served through the cache; a moved alias is
    picked up by the registry poll, without a reload request."""
    from app_support import running

    other = _other_model(model_a_dir, tmp_path / "b", "test-b")
    record_run(registry, kind="train", model=load_model(other), model_dir=other, metrics={})
    settings = registry.model_copy(
        update={"model_uri": "models:/cur-ml-spb@champion", "registry_poll_seconds": 0.2}
    )
    with running(settings) as client:
        assert client.get("/readyz").json()["model_version"] == "test-a"
        set_alias(registry, "champion", "2")  # a worker elsewhere promoted test-b
        deadline = time.monotonic() + 30
        while client.get("/readyz").json()["model_version"] != "test-b":
            assert time.monotonic() < deadline, "the moved alias was not followed"
            time.sleep(0.1)
    assert _manifest_version(registry.model_dir) == "test-b"


@pytest.mark.parametrize("tamper", ["unsigned", "other scikit-learn"])
def test_a_tampered_registry_model_is_refused(registry, tmp_path, tamper):
    """Whoever writes the artifact store cannot get a model past the checks of the model
    directory: an unsigned file never reaches the cache, a signed one of another
    scikit-learn minor is refused by the load, and no payload runs."""
    marker = tmp_path / "payload-ran"
    root = Path(urlparse(registry.mlflow_artifact_location).path)
    logged = [m.parent for m in root.rglob("manifest.json") if (m.parent / "model.pkl").is_file()]
    assert logged, f"no logged model directory under {root}"
    for directory in logged:
        if tamper == "unsigned":
            plant(directory, marker)
        else:
            manifest = read_manifest(directory)
            manifest["libraries"]["scikit-learn"] = "0.1.0"
            write_signed_manifest(directory, manifest, model_key(registry))
    if tamper == "unsigned":
        with pytest.raises(ModelSignatureError, match="is not signed"):
            load_champion(registry)
        assert not (registry.model_dir / "manifest.json").exists()  # the cache stays empty
    else:
        with pytest.raises(ModelIntegrityError, match=r"scikit-learn 0\.1\.0, this environment"):
            load_champion(registry)
    assert not marker.exists()
