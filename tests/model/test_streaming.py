"""The streaming training path (`cur_ml.model.streaming`) on the demo appeals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from cur_ml.data import LABEL_COLUMNS
from cur_ml.errors import DataError, InputError
from cur_ml.model.streaming import StreamingAppealClassifier
from cur_ml.model.taxonomy import DISTRICT_SLOT, district_genitive

SMALL = {"n_features": 2**16, "char_ngrams": (3, 4), "alpha": 1e-4, "n_jobs": 1}


@pytest.fixture(scope="module")
def csv_model(demo_path) -> StreamingAppealClassifier:
    return StreamingAppealClassifier(**SMALL, epochs=3, chunk_size=200).fit_csv(
        demo_path, split="train"
    )


def test_fit_csv_learns_every_train_row_in_bounded_chunks(demo_path, demo_train, monkeypatch):
    seen: list[int] = []
    original = StreamingAppealClassifier.partial_fit

    def spy(self, X, y, classes=None):
        seen.append(len(X))
        return original(self, X, y, classes=classes)

    monkeypatch.setattr(StreamingAppealClassifier, "partial_fit", spy)
    model = StreamingAppealClassifier(**SMALL, epochs=2, chunk_size=150)
    model.fit_csv(demo_path, split="train")
    n_train = len(demo_train.frame)
    assert max(seen) <= 150
    assert sum(seen) == 2 * n_train  # two passes over every usable train row
    assert model.n_rows_seen_ == n_train
    for head in ("category", "reason", "urgency"):
        assert set(model.classes_[head]) == set(demo_train.frame[head])


def test_predictions_beat_the_majority_label_on_dev(csv_model, demo_train, demo_dev):
    dev = demo_dev.frame
    got = csv_model.predict(dev)
    assert list(got.columns) == list(LABEL_COLUMNS)
    for head in ("category", "reason", "agency"):
        majority = demo_train.frame[head].value_counts().index[0]
        baseline = float((dev[head] == majority).mean())
        accuracy = float((got[head].to_numpy() == dev[head].to_numpy()).mean())
        assert accuracy > baseline + 0.1, (head, accuracy, baseline)


def test_probabilities_follow_the_classes(csv_model, demo_dev):
    rows = demo_dev.frame.iloc[:40]
    proba, got = csv_model.predict_proba(rows), csv_model.predict(rows)
    for head in LABEL_COLUMNS:
        p = proba[head]
        assert p.shape == (40, len(csv_model.classes_[head]))
        assert np.allclose(p.sum(axis=1), 1.0)
    for head in ("category", "reason", "urgency"):
        best = csv_model.classes_[head][proba[head].argmax(axis=1)]
        assert list(best) == list(got[head])
    # The agency head scores roles; the answer is the likeliest role in the appeal's district.
    roles = csv_model.classes_["agency"][proba["agency"].argmax(axis=1)]
    for role, agency, district in zip(roles, got["agency"], rows["district"], strict=True):
        if DISTRICT_SLOT in role:
            assert agency == role.replace(DISTRICT_SLOT, district_genitive(district))
        else:
            assert agency == role


def test_agency_roles_stand_for_district_agencies(csv_model, demo_train):
    frame = demo_train.frame
    roles = set(csv_model.classes_["agency"])
    assert any(DISTRICT_SLOT in role for role in roles)
    assert len(roles) < frame["agency"].nunique()
    for agency, district in zip(frame["agency"], frame["district"], strict=True):
        filled = {r.replace(DISTRICT_SLOT, district_genitive(district)) for r in roles}
        assert agency in roles | filled


def test_fit_on_a_frame_matches_fit_csv(demo_train, tmp_path):
    frame = demo_train.frame
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    from_csv = StreamingAppealClassifier(**SMALL, epochs=2, chunk_size=200).fit_csv(path)
    from_frame = StreamingAppealClassifier(**SMALL, epochs=2, chunk_size=200)
    from_frame.fit(frame, frame[list(LABEL_COLUMNS)])
    # The same rows, chunks, order and seed: the same weights, wherever the rows came from.
    for head in LABEL_COLUMNS:
        assert np.allclose(from_frame.heads_[head].coef_, from_csv.heads_[head].coef_, atol=1e-6)


def test_refusals_name_the_problem(demo_path, demo_train, tmp_path):
    frame = demo_train.frame
    with pytest.raises(NotFittedError):
        StreamingAppealClassifier(**SMALL).predict(frame.iloc[:3])
    with pytest.raises(InputError, match="first call needs classes"):
        StreamingAppealClassifier(**SMALL).partial_fit(frame.iloc[:50], frame.iloc[:50])
    no_agency = tmp_path / "no-agency.csv"
    pd.read_csv(demo_path).drop(columns=["agency"]).to_csv(no_agency, index=False)
    with pytest.raises(DataError, match=r"missing column.*agency"):
        StreamingAppealClassifier(**SMALL).fit_csv(no_agency)
    with pytest.raises(DataError, match=r"no usable rows.*'nope'"):
        StreamingAppealClassifier(**SMALL).fit_csv(demo_path, split="nope")
