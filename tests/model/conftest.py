"""Fixtures of the model tests: the bundled golden model, adopted explicitly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cur_ml.model.bundle import sign_directory
from cur_ml.model.signing import model_key
from cur_ml.settings import Settings

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


@pytest.fixture(scope="session")
def golden_model_dir(tmp_path_factory) -> Path:
    """A copy of `tests/data/golden/model` signed with the test key. The bundled file is
    unsigned and stays so: it is adopted here as `cur-ml model sign` adopts a trusted model."""
    adopted = tmp_path_factory.mktemp("golden") / "model"
    shutil.copytree(GOLDEN / "model", adopted)
    sign_directory(adopted, model_key(Settings()))
    return adopted
