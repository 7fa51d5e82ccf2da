"""Fixtures of the API tests: apps on the demo model, each with its own SQLite store."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from app_support import running
from fastapi.testclient import TestClient

from cur_ml.data import load_appeals
from cur_ml.model import load_model
from cur_ml.model.training import train_model
from cur_ml.settings import Settings

DEMO = Path(__file__).resolve().parents[2] / "datasets" / "demo" / "appeals.csv"


def api_settings(tmp: Path, model_dir: Path, **overrides) -> Settings:
    """Settings isolated from the environment: own store, no tokens, no polling."""
    values = {
        "model_dir": model_dir,
        "database_url": f"sqlite:///{tmp / 'store.sqlite3'}",
        "predict_token": None,
        "operator_token": None,
        "admin_token": None,
        "model_poll_seconds": 0,
        "max_batch": 1_000,
        "max_text_chars": 20_000,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def model_a_dir(tmp_path_factory) -> Path:
    """The demo model (trained on the demo train split) with the fixed version `test-a`."""
    model = train_model(load_appeals([DEMO], split="train"), show_progress=False)
    model.manifest["version"] = "test-a"
    return model.save(tmp_path_factory.mktemp("model_a"))


@pytest.fixture(scope="session")
def model_b_dir(tmp_path_factory, model_a_dir) -> Path:
    """A second model (other regularisation), version `test-b`."""
    model = train_model(
        load_appeals([DEMO], split="train"), params={"reason_C": 1.0}, show_progress=False
    )
    model.manifest["version"] = "test-b"
    return model.save(tmp_path_factory.mktemp("model_b"))


@pytest.fixture(scope="session")
def dev_texts() -> list[str]:
    return list(load_appeals([DEMO], split="dev").frame["text"])


@pytest.fixture(scope="module")
def client(tmp_path_factory, model_a_dir) -> Iterator[TestClient]:
    """An open app (no tokens) on model `test-a`, shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("api")
    with running(api_settings(tmp, model_a_dir)) as c:
        yield c


@pytest.fixture
def app_factory(tmp_path) -> Callable[..., AbstractContextManager[TestClient]]:
    """`with app_factory(model_dir, **settings) as client:` — a fresh app and store per test."""

    def make(model_dir: Path, **overrides) -> AbstractContextManager[TestClient]:
        return running(api_settings(tmp_path, model_dir, **overrides))

    return make


@pytest.fixture(scope="session")
def settings_for() -> Callable[..., Settings]:
    """`settings_for(tmp_dir, model_dir, **overrides)`: isolated settings for an app."""
    return api_settings


@pytest.fixture(scope="session")
def start() -> Callable[[Settings], AbstractContextManager[TestClient]]:
    """`with start(settings) as client:` — a started app whose model is loaded."""
    return running


@pytest.fixture
def served_dir(tmp_path, model_a_dir) -> Path:
    """A writable copy of model `test-a` that a test may overwrite with another model."""
    target = tmp_path / "served"
    shutil.copytree(model_a_dir, target)
    return target


@pytest.fixture(scope="session")
def replace_model() -> Callable[[Path, Path], None]:
    """`replace_model(source, target)`: save the model of `source` into `target` as training
    does (model file first, then the manifest)."""

    def replace(source: Path, target: Path) -> None:
        load_model(source).save(target)

    return replace
