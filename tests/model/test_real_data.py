"""A training run on a slice of the real portal data (skips where ../shared is absent)."""

from __future__ import annotations

import pytest

from cur_ml.data import Dataset, load_appeals
from cur_ml.model.training import evaluate_model, train_model

pytestmark = [pytest.mark.slow, pytest.mark.shared]


@pytest.fixture(scope="module")
def real_slice(shared_appeals):
    train = load_appeals([shared_appeals], split="train")
    dev = load_appeals([shared_appeals], split="dev")
    # The newest 12,000 training appeals and the first 3,000 of March: a minute, not ten.
    return (
        Dataset(train.frame.tail(12_000).reset_index(drop=True), train.paths),
        dev.frame.head(3_000).reset_index(drop=True),
    )


def test_trains_on_real_slice_and_beats_text_only_baselines(real_slice):
    train, dev = real_slice
    model = train_model(train, show_progress=False)
    metrics = evaluate_model(model, dev)
    # Full-data TF-IDF + LinearSVC reference on dev: 0.930 / 0.746 / 0.829 / 0.713;
    # a quarter of the data must still beat those on every head.
    assert metrics["category"]["accuracy"] > 0.93
    assert metrics["reason"]["accuracy"] > 0.80
    assert metrics["urgency"]["accuracy"] > 0.87
    assert metrics["urgency"]["recall_high"] > 0.80
    assert metrics["agency"]["accuracy"] > 0.75
    for head in ("category", "reason", "urgency", "agency"):
        assert metrics[head]["ece"] < 0.06, head  # calibrated: confidence ≈ accuracy
    # What is let through without review is more accurate than the whole.
    passed = metrics["needs_review"]["accuracy_without_review"]
    assert passed["reason"] > metrics["reason"]["accuracy"]
