"""Retraining that means it: named base data, a recent holdout it never trains on, refusal
when no correction matches, and weight only for labels that really changed."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from corrections_support import DEMO, settings_for

from cur_ml.data import load_appeals
from cur_ml.errors import RetrainRefusedError
from cur_ml.model.taxonomy import Taxonomy
from cur_ml.retrain.base import changed_labels, file_sha256, load_base, recent_holdout
from cur_ml.retrain.jobs import run_retrain
from cur_ml.store import make_engine, upgrade
from cur_ml.store.corrections import CorrectionIn, CorrectionRepository

CLI = [sys.executable, "-c", "from cur_ml.cli import main; main()"]


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _imported(engine, events: list[tuple[str, str, str]]) -> None:
    """Store history events (appeal_id, field, new) as `corrections import` does."""
    at = datetime(2024, 7, 1, tzinfo=UTC)
    CorrectionRepository(engine).add_many(
        [
            CorrectionIn(
                field=field,
                new_value=new,
                operator="import",
                appeal_id=appeal_id,
                source="import",
                idempotency_key=f"import:test:{appeal_id}:{field}:{i}",
                created_at=at + timedelta(minutes=i),
            )
            for i, (appeal_id, field, new) in enumerate(events)
        ]
    )


# ---------------------------------------------------------------------------- base data
def test_no_base_data_is_refused_not_the_demo_silently():
    with pytest.raises(RetrainRefusedError, match=r"no base data named.*--base-data"):
        load_base([])


def test_the_base_data_is_hashed_and_counted():
    base = load_base([DEMO], "train")
    described = base.describe()
    assert (described["rows"], described["split_rows"], described["split"]) == (988, 790, "train")
    assert base.trainable().sum() == 790
    assert described["sha256"] == file_sha256([DEMO]) and len(described["sha256"]) == 64


def _weekly(rows: int, per_day: int = 4) -> pd.DataFrame:
    start = pd.Timestamp("2024-01-01T08:00:00")
    times = [start + pd.Timedelta(hours=24 / per_day * i) for i in range(rows)]
    return pd.DataFrame({"created_at": [t.isoformat() for t in times], "text": ["т"] * rows})


@pytest.mark.parametrize(
    ("rows", "min_rows", "fraction", "target"),
    [(700, 100, 0.5, 100), (700, 2_000, 0.2, 140), (700, 56, 0.2, 56)],
)
def test_the_holdout_is_the_newest_whole_weeks(rows, min_rows, fraction, target):
    frame = _weekly(rows).sample(frac=1, random_state=0).reset_index(drop=True)  # any order
    mask, info = recent_holdout(frame, min_rows=min_rows, max_fraction=fraction)
    times = pd.to_datetime(frame["created_at"])
    assert mask.sum() == info["rows"] >= target
    assert times[mask].min() > times[~mask].max()  # newer than every training row
    assert mask.sum() - 7 * 4 < target  # one week fewer would not be enough
    assert info["weeks"] == -(-target // 28)  # 4 appeals a day: 28 a week


def test_without_times_the_holdout_is_the_last_rows():
    frame = pd.DataFrame({"text": ["т"] * 50})
    mask, info = recent_holdout(frame, min_rows=2_000, max_fraction=0.2)
    assert mask.tolist() == [False] * 40 + [True] * 10 and info["by"].startswith("file order")


def test_a_correction_to_the_label_a_row_has_changes_nothing():
    before = pd.DataFrame(
        {
            "category": ["A", "A", "B"],
            "reason": ["a1", "a2", "b1"],
            "urgency": ["high", "low", "low"],
            "agency": ["X", "Y", "Z"],
        }
    )
    after = before.assign(agency=["X", "Q", "Z"], reason=["a1", "a2", "b2"])
    changed, per_field = changed_labels(before, after)
    assert changed.tolist() == [False, True, True]
    assert per_field == {"category": 0, "reason": 1, "urgency": 0, "agency": 1}


# ----------------------------------------------------------------------- refusals
def test_retrain_refuses_when_no_correction_matches_the_base_data(tmp_path, store):
    _imported(store, [("999000001", "agency", "СПб ГКУ ЖА Невского района")])
    _imported(store, [("999000002", "reason", "Мусор")])
    settings = settings_for(tmp_path, tmp_path / "models" / "default", base_data=[DEMO])
    with pytest.raises(RetrainRefusedError) as refused:
        run_retrain(settings, store)
    message = refused.value.message
    assert "none of the 2 stored corrections names an appeal of" in message
    assert str(DEMO) in message and "(988 rows)" in message
    assert "--allow-no-match" in message and "\n" not in message
    assert not (tmp_path / "models").exists()  # nothing trained, nothing promoted


def test_the_cli_refuses_in_one_line_and_records_the_job(tmp_path, store):
    _imported(store, [("999000001", "agency", "СПб ГКУ ЖА Невского района")])
    env = {
        "CUR_ML_DATABASE_URL": str(store.url),
        "CUR_ML_MODEL_DIR": str(tmp_path / "models" / "default"),
        "CUR_ML_MLFLOW_ENABLED": "false",
        "CUR_ML_BASE_DATA": "[]",
        "PATH": "/usr/bin:/bin",
    }
    bare = subprocess.run([*CLI, "retrain"], env=env, capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2
    assert bare.stderr.strip().splitlines() == [
        "cur-ml: error: no base data named: set CUR_ML_BASE_DATA or pass --base-data PATH "
        "(the appeals the corrections refer to; the bundled demo: --base-data "
        "datasets/demo/appeals.csv)"
    ]
    named = subprocess.run(
        [*CLI, "retrain", "--base-data", str(DEMO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert named.returncode == 2
    (line,) = named.stderr.strip().splitlines()
    assert line.startswith("cur-ml: error: retrain refused: none of the 1 stored corrections")
    missing = subprocess.run(
        [*CLI, "retrain", "--base-data", str(tmp_path / "nope.csv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "nope.csv: no such file" in missing.stderr
    from cur_ml.store.retrain_runs import RetrainRunRepository

    runs = RetrainRunRepository(store).recent()
    assert [r.status for r in runs] == ["failed", "failed"]  # both visible, with the reason
    assert "retrain refused" in runs[0].error


# ------------------------------------------------------------------- up-weighting
def test_only_rows_whose_label_changed_weigh_more(tmp_path, store, monkeypatch):
    train = load_appeals([DEMO], split="train").frame
    taxonomy = Taxonomy.from_labels(train)
    oldest = train.sort_values("created_at").head(20)  # never in the recent holdout
    rows = oldest.to_dict("records")
    events = []
    for row in rows[:3]:  # a reason of another category: category and urgency may move too
        other = next(r for r in taxonomy.category_of if taxonomy.category_of[r] != row["category"])
        events.append((row["id"], "reason", other))
    events += [(row["id"], "agency", row["agency"]) for row in rows[3:5]]  # already so
    other_agency = next(a for a in train["agency"].unique() if a != rows[5]["agency"])
    events.append((rows[5]["id"], "agency", other_agency))
    _imported(store, events)

    captured = {}
    import cur_ml.retrain.loop as loop

    real = loop.train_model

    def spy(data, **kwargs):
        captured["frame"], captured["weights"] = data.frame, kwargs["sample_weight"]
        return real(data, **kwargs)

    monkeypatch.setattr(loop, "train_model", spy)
    settings = settings_for(tmp_path, tmp_path / "models" / "default", base_data=[DEMO])
    result = run_retrain(settings, store)

    expected = {"category": 0, "reason": 3, "urgency": 0, "agency": 1}
    for row in rows[:3]:
        new = next(e[2] for e in events if e[0] == row["id"])
        expected["category"] += taxonomy.category_of[new] != row["category"]
        expected["urgency"] += taxonomy.urgency_of[new] != row["urgency"]
    assert result.corrections_matched == 6
    assert result.changed == expected
    assert result.corrections_applied == 4  # 3 reasons + 1 agency; the 2 no-ops weigh 1
    weights, frame = captured["weights"], captured["frame"]
    heavy = set(frame.loc[weights == settings.corrected_weight, "id"])
    assert heavy == {rows[i]["id"] for i in (0, 1, 2, 5)}
    assert (weights[~frame["id"].isin(heavy).to_numpy()] == 1.0).all()
    # The holdout (the newest weeks of the files) is never trained on; training keeps the
    # rows of the split.
    assert result.training_rows == len(frame) <= 790 and set(frame["split"]) == {"train"}
    since = pd.Timestamp(result.holdout["since"])
    assert (pd.to_datetime(frame["created_at"], utc=True) <= since).all()
    assert result.holdout["rows"] >= 988 * 0.2
    assert result.base_data["sha256"] == file_sha256([DEMO])
    assert result.promoted and result.reasons_ru == ["чемпиона ещё нет"]
    manifest_corrections = load_manifest(result.registry_dir)["corrections"]
    assert manifest_corrections["changed"] == expected
    assert np.isclose(weights.sum(), len(frame) + 4 * (settings.corrected_weight - 1))


def load_manifest(directory: str) -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------- a fair champion
def test_a_champion_that_saw_the_holdout_is_judged_by_its_recipe_refit(
    tmp_path, monkeypatch, model_a_dir
):
    """Model `test-a` trained on every train row, the recent holdout included: its figures
    there are those of appeals it has seen. The gate then judges the challenger against the
    champion's parameters refit on the challenger's rows without the corrections. A champion
    that never saw the holdout is judged as it is, with no refit."""
    import cur_ml.retrain.loop as loop
    from cur_ml.model.bundle import load_model
    from cur_ml.model.training import train_model
    from cur_ml.retrain.champion import Champion
    from cur_ml.retrain.loop import retrain

    base = load_base([DEMO])
    holdout_mask, _ = recent_holdout(base.frame, min_rows=2_000, max_fraction=0.2)
    fits = []
    real = loop.train_model

    def spy(data, **kwargs):
        fits.append(((kwargs.get("extra_manifest") or {}).get("refit_of"), data.frame))
        return real(data, **kwargs)

    monkeypatch.setattr(loop, "train_model", spy)
    settings = settings_for(tmp_path, tmp_path / "models" / "default", base_data=[DEMO])
    events = pd.DataFrame(
        {
            "appeal_id": [base.frame["id"].iloc[0]],
            "at": [pd.Timestamp("2024-07-01", tz="UTC")],
            "field": ["agency"],
            "new": [base.frame["agency"].iloc[1]],
        }
    )

    seen_all = load_model(model_a_dir)
    result = retrain(
        settings,
        base=base,
        base_corrections=events,
        show_progress=False,
        champion=Champion(seen_all, model_a_dir, "directory"),
    )
    in_train_split = base.trainable() & holdout_mask
    assert result.holdout["champion_seen"] == in_train_split.sum() > 0
    assert [refit for refit, _ in fits] == [None, "test-a"]
    refit_rows = fits[1][1]
    assert not refit_rows["id"].isin(base.frame.loc[holdout_mask, "id"]).any()
    assert (
        refit_rows["agency"].to_numpy()
        == base.frame.loc[base.trainable() & ~holdout_mask, "agency"].to_numpy()
    ).all()  # labels before corrections
    assert "trained on" in result.reasons[1] and "refit" in result.reasons[1]
    assert result.reasons_ru[1].startswith("чемпион обучался на")
    assert set(result.metrics) == {"challenger", "champion", "champion_as_served"}

    older = base.frame[base.trainable() & ~holdout_mask]
    unseen = train_model(type(base.dataset)(older, base.dataset.paths, {}), show_progress=False)
    assert unseen.seen(base.frame.loc[holdout_mask, "id"]) == 0
    fits.clear()
    result = retrain(
        settings,
        base=base,
        base_corrections=events,
        show_progress=False,
        champion=Champion(unseen, tmp_path, "directory"),
    )
    assert result.holdout["champion_seen"] == 0
    assert [refit for refit, _ in fits] == [None]  # judged as it is
    assert not any("refit" in r for r in result.reasons)
    assert set(result.metrics) == {"challenger", "champion"}


def test_the_holdouts_truth_takes_corrections_to_labels_never_approved(tmp_path, store):
    """Approval decides what a model may learn, not what is true: a holdout appeal re-routed
    to an agency nobody approved counts as that agency when both models are judged."""
    frame = load_appeals([DEMO]).frame
    mask, _ = recent_holdout(frame, min_rows=2_000, max_fraction=0.2)
    recent, old = frame[mask].iloc[0], frame[~mask & (frame["split"] == "train")].iloc[0]
    other = next(a for a in frame["agency"].unique() if a != old["agency"])
    _imported(
        store, [(recent["id"], "agency", "ГКУ Никем не одобренное"), (old["id"], "agency", other)]
    )
    settings = settings_for(tmp_path, tmp_path / "models" / "default", base_data=[DEMO])
    result = run_retrain(settings, store)
    assert result.labels_refused["agency"] == 1  # not learned ...
    assert result.changed["agency"] == 1  # (the approved one is)
    assert result.holdout["labels_corrected"] == 1  # ... but true on the holdout
