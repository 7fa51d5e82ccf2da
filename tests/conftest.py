"""Shared fixtures: demo data, a model trained on it once per session, the real data if present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cur_ml.data import load_appeals
from cur_ml.model.training import train_model

# MLflow records are tested where they are the point (tests/test_tracking.py); elsewhere they
# would only slow the suite down and fill var/ of the checkout.
os.environ.setdefault("CUR_ML_MLFLOW_ENABLED", "false")
# Models are signed (cur_ml/model/signing.py): every model the tests save and load, in this
# process and in the servers and CLIs they start, uses this key, never the checkout's var/.
TEST_MODEL_KEY = "cur-ml-tests-model-signing-key-0123456789"
os.environ.setdefault("CUR_ML_MODEL_KEY", TEST_MODEL_KEY)

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "datasets" / "demo" / "appeals.csv"
SHARED = REPO.parent / "shared" / "datasets" / "spb" / "appeals.csv.gz"


@pytest.fixture(scope="session")
def demo_path() -> Path:
    return DEMO


@pytest.fixture(scope="session")
def demo_train():
    return load_appeals([DEMO], split="train")


@pytest.fixture(scope="session")
def demo_dev():
    return load_appeals([DEMO], split="dev")


@pytest.fixture(scope="session")
def demo_model(demo_train):
    return train_model(demo_train, show_progress=False)


@pytest.fixture(scope="session")
def demo_model_dir(demo_model, tmp_path_factory) -> Path:
    return demo_model.save(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def shared_appeals() -> Path:
    if not SHARED.exists():
        pytest.skip(f"real data not found at {SHARED} (only CI and team machines have ../shared)")
    return SHARED


# On a laptop, tests that need ../shared, PostgreSQL or chromium skip; CI has all three, so
# there (.ci/run sets CUR_ML_TEST_REQUIRE_ALL=1) a skip is a failure, never a quiet green.
_REQUIRE_ALL = os.environ.get("CUR_ML_TEST_REQUIRE_ALL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped where everything must run (CI): {report.longrepr}"
