"""The second demo region (`krd`, datasets/demo_krd/): loadable, its own label space, learnable."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from cur_ml.data import load_appeals
from cur_ml.model.training import evaluate_model, train_model

KRD = Path(__file__).resolve().parents[2] / "datasets" / "demo_krd"
APPEALS = KRD / "appeals.csv"


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def krd() -> pd.DataFrame:
    return load_appeals([APPEALS]).frame


@pytest.fixture(scope="module")
def spb(demo_path) -> pd.DataFrame:
    return load_appeals([demo_path]).frame


def test_files_have_the_spb_demo_shape(demo_path):
    assert list(_csv(APPEALS).columns) == list(_csv(demo_path).columns)
    for name in ("corrections.csv", "reason_deadlines.csv"):
        assert list(_csv(KRD / name).columns) == list(_csv(demo_path.parent / name).columns)


def test_loads_whole_with_enough_rows_and_labels(krd):
    raw = _csv(APPEALS)
    assert len(krd) == len(raw) >= 300  # load_appeals skipped nothing
    assert set(krd["split"]) == {"train", "dev"}
    assert krd["category"].nunique() >= 8
    assert krd["agency"].nunique() >= 12
    assert krd["id"].is_unique


def test_label_space_and_ids_are_its_own(krd, spb):
    # urgency's three levels are shared by design, and object types like «Улица» may be
    for column in ("category", "reason", "agency", "district"):
        shared = set(krd[column]) & set(spb[column])
        assert not shared, f"{column} shared with the spb demo: {sorted(shared)}"
    assert not set(krd["id"]) & set(spb["id"])


def test_each_reason_has_one_category_and_its_deadline(krd):
    deadlines = _csv(KRD / "reason_deadlines.csv").set_index("reason")
    assert deadlines.index.is_unique
    assert set(krd["reason"]) == set(deadlines.index)
    assert (krd.groupby("reason")["category"].nunique() == 1).all()
    by_reason = deadlines.loc[krd["reason"]]
    assert list(krd["deadline_days"]) == list(by_reason["deadline_days"])
    assert list(krd["urgency"]) == list(by_reason["urgency"])
    assert deadlines["observations"].astype(int).to_dict() == Counter(krd["reason"])


def test_corrections_end_at_the_final_labels(krd):
    events = _csv(KRD / "corrections.csv")
    rows = krd.set_index("id")
    assert len(events) >= 50 and set(events["field"]) == {"reason", "agency"}
    assert events["appeal_id"].isin(rows.index).all()
    last = events.groupby(["appeal_id", "field"]).tail(1)
    for event in last.itertuples():
        row = rows.loc[event.appeal_id]
        assert event.new == row[event.field] != event.old
        assert event.old == row[f"{event.field}_initial"]
        assert event.at > row["created_at"]


def test_split_is_by_time(krd):
    train, dev = krd[krd["split"] == "train"], krd[krd["split"] == "dev"]
    assert train["created_at"].max() <= dev["created_at"].min()
    assert 0.75 <= len(train) / len(krd) <= 0.85


def test_a_model_learns_category_and_agency():
    train = load_appeals([APPEALS], split="train")
    dev = load_appeals([APPEALS], split="dev").frame
    metrics = evaluate_model(train_model(train, show_progress=False), dev)
    for head in ("category", "reason", "urgency", "agency"):
        majority = train.frame[head].value_counts().index[0]
        base = float((dev[head] == majority).mean())
        accuracy = metrics[head]["accuracy"]
        print(f"krd dev {head}: accuracy {accuracy:.3f}, majority class {base:.3f}")
        if head in ("category", "agency"):
            assert accuracy >= base + 0.3, f"{head}: {accuracy:.3f} vs majority {base:.3f}"
