"""Notebooks read the right data and never write to the configured MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cur_ml import notebook
from cur_ml.errors import DataError
from cur_ml.notebook import notebook_data, scratch_settings
from cur_ml.settings import Settings

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _code(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def test_the_data_is_real_when_shared_is_there_else_demo(tmp_path, monkeypatch):
    shared = tmp_path / "spb"
    shared.mkdir()
    (shared / "appeals.csv.gz").write_bytes(b"")
    (shared / "corrections.csv.gz").write_bytes(b"")
    monkeypatch.setattr(notebook, "SHARED_DATA", shared)
    real = notebook_data(Settings(notebook_data="auto"))
    assert real.real and real.appeals == shared / "appeals.csv.gz"
    demo = notebook_data(Settings(notebook_data="demo"))
    assert not demo.real and demo.appeals == Settings().demo_data
    assert demo.corrections.name == "corrections.csv"
    monkeypatch.setattr(notebook, "SHARED_DATA", tmp_path / "absent")
    assert notebook_data(Settings(notebook_data="auto")) == demo
    assert notebook_data(Settings(notebook_data=str(shared))).appeals.parent == shared
    with pytest.raises(DataError, match="CUR_ML_NOTEBOOK_DATA"):
        notebook_data(Settings(notebook_data=str(tmp_path / "nowhere")))
    with pytest.raises(DataError, match=r"no appeals\.csv or appeals\.csv\.gz"):
        notebook_data(Settings(notebook_data=str(tmp_path)))


def test_scratch_settings_point_away_from_the_configured_store(tmp_path):
    configured = Settings(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mine.db'}")
    scratch, directory = scratch_settings("t", configured)
    assert scratch.mlflow_tracking_uri == f"sqlite:///{directory / 'mlflow.db'}"
    assert scratch.mlflow_tracking_uri != configured.mlflow_tracking_uri
    assert scratch.model_dir.is_relative_to(directory)
    assert scratch.mlflow_artifact_location.startswith(directory.as_uri())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_starts_from_the_shared_setup(path):
    first, *rest = _code(path)
    assert "scratch_settings(" in first and "notebook_data(" in first and "quiet()" in first
    # A notebook that built its own Settings() would reach the configured store.
    assert not any("Settings(" in cell for cell in [first, *rest])


def test_notebooks_leave_the_configured_registry_alone(demo_model, tmp_path, monkeypatch):
    """Run the notebooks that register models against a store with a champion of its own."""
    import mlflow
    import nbformat
    from nbclient import NotebookClient

    from cur_ml.tracking import log_run, set_alias

    uri = f"sqlite:///{tmp_path / 'configured.db'}"
    configured = Settings(
        mlflow_enabled=True,
        mlflow_tracking_uri=uri,
        mlflow_artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    run = log_run(
        configured,
        kind="train",
        model=demo_model,
        model_dir=demo_model.save(tmp_path / "m"),
        metrics={},
    )
    set_alias(configured, "champion", run["registered_version"])
    monkeypatch.setenv("CUR_ML_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("CUR_ML_MLFLOW_ARTIFACT_LOCATION", configured.mlflow_artifact_location)
    monkeypatch.setenv("CUR_ML_NOTEBOOK_DATA", "demo")
    for path in NOTEBOOKS:
        if not any("log_run(" in cell for cell in _code(path)):
            continue
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name = 'cur-ml-spb'")
    assert [str(v.version) for v in versions] == [run["registered_version"]]
    aliases = client.get_registered_model("cur-ml-spb").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": run["registered_version"]}
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == 1
