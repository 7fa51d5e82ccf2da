"""Regions (tenants) served from one process: each its own model and label sets, loaded on
first use, unloaded above the memory budget or when idle; unknown regions are 422, a region
without a model is 503 for that region only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cur_ml.data import load_appeals
from cur_ml.model.training import train_model

REPO = Path(__file__).resolve().parents[2]
KRD = REPO / "datasets" / "demo_krd" / "appeals.csv"
LIFT = {"text": "Не работает лифт в подъезде, третий день ходим пешком"}
WATER = {"text": "Третий день нет воды в посёлке, водоканал не отвечает", "region": "krd"}


@pytest.fixture(scope="module")
def krd_model_dir(tmp_path_factory) -> Path:
    model = train_model(load_appeals([KRD], split="train"), show_progress=False)
    return model.save(tmp_path_factory.mktemp("krd-model"))


@pytest.fixture
def models(tmp_path, demo_model_dir, krd_model_dir) -> Path:
    """tmp/models/{spb,krd,krd2}: the two demo regions, and a third region (a copy of krd)."""
    root = tmp_path / "models"
    shutil.copytree(demo_model_dir, root / "spb")
    shutil.copytree(krd_model_dir, root / "krd")
    shutil.copytree(krd_model_dir, root / "krd2")
    return root


@pytest.fixture
def regional(tmp_path, models, settings_for):
    """Settings of four regions: spb, krd, krd2 with models, `empty` without."""

    def make(**overrides):
        regions = ["spb", "krd", "krd2", "empty"]
        return settings_for(tmp_path, models / "{region}", regions=regions, **overrides)

    return make


def _labels(model_dir: Path, head: str) -> set[str]:
    from cur_ml.model.bundle import load_model

    return set(load_model(model_dir).label_sets()[head])


def test_two_regions_answer_from_one_process_with_their_own_labels(
    regional, models, start, demo_model_dir, krd_model_dir
):
    spb_agencies, krd_agencies = (_labels(d, "agency") for d in (demo_model_dir, krd_model_dir))
    assert spb_agencies.isdisjoint(krd_agencies)  # the two demo taxonomies share no agency
    with start(regional()) as client:
        r = client.post("/v1/predict", json={"appeals": [LIFT, WATER, {**LIFT, "region": "spb"}]})
        assert r.status_code == 200, r.text
        spb, krd, spb_again = r.json()["predictions"]
        assert (spb["region"], krd["region"], spb_again["region"]) == ("spb", "krd", "spb")
        assert spb["agency"] in spb_agencies and krd["agency"] in krd_agencies
        assert krd["model_version"] != spb["model_version"]
        assert r.json()["model_version"] == spb["model_version"]  # the first appeal's region
        # Corrections of either region refer to predictions stored with their region.
        stored = client.app.state.predictions.get(krd["prediction_id"])
        assert stored.region == "krd" and stored.agency == krd["agency"]
        model = client.get("/v1/model", params={"region": "krd"}).json()
        assert set(model["labels"]["agency"]) == krd_agencies


def test_unknown_region_is_422_and_a_region_without_a_model_is_503_alone(regional, models, start):
    with start(regional()) as client:
        r = client.post("/v1/predict", json={"appeals": [LIFT, {**LIFT, "region": "msk"}]})
        assert r.status_code == 422
        assert r.json()["detail"][0]["field"] == "appeals[1].region"
        assert "msk" in r.json()["message"] and "spb" in r.json()["message"]
        r = client.post("/v1/predict", json={"appeals": [{**LIFT, "region": "empty"}]})
        assert r.status_code == 503 and r.json()["error"] == "model_unavailable"
        assert "empty" in r.json()["message"] and str(models) not in r.text
        before = client.app.state.predictions.count()
        # A request mixing a region without a model stores nothing; others go on as before.
        r = client.post("/v1/predict", json={"appeals": [LIFT, {**LIFT, "region": "empty"}]})
        assert r.status_code == 503 and client.app.state.predictions.count() == before
        assert client.post("/v1/predict", json={"appeals": [WATER]}).status_code == 200
        assert client.get("/v1/model", params={"region": "msk"}).status_code == 422


def test_regions_load_on_first_use_and_are_unloaded_above_the_budget(regional, start):
    with start(regional(model_memory_mb=1.0)) as client:
        client.app.state.regions.in_use_seconds = 0  # (10 s in service: a region in use stays)

        def status() -> dict[str, dict]:
            return {s["region"]: s for s in client.get("/v1/regions").json()}

        assert not status()["krd"]["loaded"]  # nothing asked for krd yet
        assert client.post("/v1/predict", json={"appeals": [WATER]}).status_code == 200
        krd = status()["krd"]
        assert krd["loaded"] and krd["memory_mib"] > 1.0  # what it took, measured
        # krd2 loads; krd, least recently used, goes: both would exceed 1 MiB. spb stays.
        r = client.post("/v1/predict", json={"appeals": [{**WATER, "region": "krd2"}]})
        assert r.status_code == 200
        now = status()
        assert now["krd2"]["loaded"] and not now["krd"]["loaded"] and now["spb"]["loaded"]
        assert client.app.state.regions.evictions == 1
        # Its next request loads it again (and krd2 goes).
        assert client.post("/v1/predict", json={"appeals": [WATER]}).status_code == 200
        assert status()["krd"]["loaded"] and not status()["krd2"]["loaded"]


def test_an_idle_region_is_unloaded(regional, start):
    with start(regional(model_idle_minutes=0.0005)) as client:
        assert client.post("/v1/predict", json={"appeals": [WATER]}).status_code == 200
        regions = client.app.state.regions
        serving = regions.peek("krd")
        serving.last_used -= 60.0  # a minute ago: idle beyond 0.03 s, and not in use
        assert regions.evict_over_budget() == ["krd"]
        assert regions.peek("krd") is None and regions.peek("spb") is not None
