"""The promotion gate: paired tests on the same holdout, built from predictions directly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from cur_ml.retrain.gate import _codes, decide, macro_f1, mcnemar

HEADS = ("category", "reason", "urgency", "agency")
N = 400


def _truth(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.array([f"label {i}" for i in range(12)], dtype=object)
    urgency = rng.choice(np.array(["high", "medium", "low"], dtype=object), N, p=[0.3, 0.5, 0.2])
    return {
        "category": rng.choice(labels[:5], N),
        "reason": rng.choice(labels, N),
        "urgency": urgency,
        "agency": rng.choice(labels[:8], N),
    }


def _noisy(truth: dict[str, np.ndarray], accuracy: float, seed: int) -> dict[str, np.ndarray]:
    """Predictions right on about `accuracy` of the appeals, wrong the same way otherwise."""
    rng = np.random.default_rng(seed)
    out = {}
    for head, y in truth.items():
        wrong = rng.random(len(y)) > accuracy
        alternative = np.roll(y, 1)
        out[head] = np.where(wrong & (alternative != y), alternative, y)
    return out


def _test(decision, head: str, metric: str):
    return next(t for t in decision.tests if (t.head, t.metric) == (head, metric))


def test_without_a_champion_the_challenger_is_promoted():
    truth = _truth()
    decision = decide(truth, None, _noisy(truth, 0.8, 1))
    assert decision.promote and decision.tests == []
    assert decision.reasons_ru == ["чемпиона ещё нет"]


def test_a_challenger_worse_on_recall_of_high_alone_is_rejected():
    truth = _truth()
    champion = _noisy(truth, 0.85, 1)
    challenger = {h: v.copy() for h, v in champion.items()}
    # Two acute appeals the champion catches are called `medium` by the challenger; two
    # `medium` appeals it gets wrong become right: urgency accuracy is unchanged.
    caught = np.flatnonzero((truth["urgency"] == "high") & (champion["urgency"] == "high"))[:2]
    missed = np.flatnonzero((truth["urgency"] == "medium") & (champion["urgency"] != "medium"))[:2]
    challenger["urgency"][caught] = "medium"
    challenger["urgency"][missed] = "medium"
    decision = decide(truth, champion, challenger)
    assert not decision.promote
    recall = _test(decision, "urgency", "recall_high")
    assert recall.worse and recall.challenger < recall.champion
    assert recall.ci_low <= 0 <= recall.ci_high  # not significant: lower is enough to refuse
    others = [t for t in decision.tests if t is not recall]
    assert not any(t.worse for t in others)
    assert _test(decision, "urgency", "accuracy").delta == 0
    assert decision.reasons_en[0] == ("rejected: urgency recall of high worse than the champion")
    assert "срочность (полнота high)" in decision.reasons_ru[0]
    assert any(
        r.startswith("срочность: полнота high") and r.endswith(": ниже")
        for r in decision.reasons_ru
    )
    tags = decision.tags()
    assert tags["decision"] == "rejected"
    assert tags["gate_urgency_recall_high_worse"] == "True"
    assert "полнота high" in tags["reasons_ru"] and "recall of high" in tags["reasons_en"]


def test_a_difference_of_two_appeals_is_noise_not_a_regression():
    truth = _truth()
    champion = _noisy(truth, 0.8, 1)
    challenger = {h: v.copy() for h, v in champion.items()}
    right = np.flatnonzero(champion["reason"] == truth["reason"])[:2]
    challenger["reason"][right] = np.where(
        truth["reason"][right] == "label 0", "label 1", "label 0"
    )
    decision = decide(truth, champion, challenger)
    accuracy = _test(decision, "reason", "accuracy")
    assert accuracy.delta == pytest.approx(-2 / N)
    assert (accuracy.champion_only, accuracy.challenger_only) == (2, 0)
    assert accuracy.p_value == pytest.approx(0.5)  # exact binomial, two-sided, of 2 vs 0
    assert not accuracy.worse and decision.promote


def test_a_head_significantly_worse_is_rejected():
    truth = _truth()
    champion = _noisy(truth, 0.9, 1)
    challenger = {**champion, "agency": _noisy(truth, 0.7, 2)["agency"]}
    decision = decide(truth, champion, challenger)
    assert not decision.promote
    accuracy = _test(decision, "agency", "accuracy")
    assert accuracy.worse and accuracy.p_value < 0.001
    assert _test(decision, "agency", "macro_f1").ci_high < 0
    assert [t.head for t in decision.tests if t.worse] == ["agency", "agency"]


def test_a_better_challenger_is_promoted_with_every_test_recorded():
    truth = _truth()
    decision = decide(truth, _noisy(truth, 0.75, 1), _noisy(truth, 0.9, 2))
    assert decision.promote
    assert {(t.head, t.metric) for t in decision.tests} == {
        *((h, m) for h in HEADS for m in ("accuracy", "macro_f1")),
        ("urgency", "recall_high"),
    }
    assert len(decision.reasons_en) == len(decision.reasons_ru) == 1 + len(decision.tests)
    assert all(t.ci_low > 0 for t in decision.tests if t.metric == "macro_f1")


def test_the_bootstrap_is_seeded():
    truth = _truth()
    old, new = _noisy(truth, 0.8, 1), _noisy(truth, 0.82, 2)
    first = _test(decide(truth, old, new, seed=7), "reason", "macro_f1")
    again = _test(decide(truth, old, new, seed=7), "reason", "macro_f1")
    other = _test(decide(truth, old, new, seed=8), "reason", "macro_f1")
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


@pytest.mark.parametrize(
    ("truth", "pred"),
    [
        (["a", "b", "c", "a"], ["a", "b", "b", "a"]),
        (["a", "a", "a", "b"], ["c", "c", "a", "b"]),  # a label only predicted counts too
        (["x", "y"], ["x", "y"]),
        (["причина 1", "причина 2", "причина 1"], ["причина 2", "причина 2", "причина 3"]),
    ],
)
def test_macro_f1_is_scikit_learns(truth, pred):
    (t, p), k = _codes(np.array(truth, dtype=object), np.array(pred, dtype=object))
    expected = f1_score(truth, pred, average="macro", zero_division=0)
    assert macro_f1(t, p, k)[0] == pytest.approx(expected)


def test_mcnemar_counts_the_discordant_pairs():
    y = np.array(list("aaaaaaaaaa"), dtype=object)
    old = np.array(list("aaaaaaaabb"), dtype=object)
    new = np.array(list("aabbbbbbaa"), dtype=object)
    p, champion_only, challenger_only = mcnemar(y, old, new)
    assert (champion_only, challenger_only) == (6, 2)
    assert p == pytest.approx(0.2890625)  # binomtest(6, 8, 0.5), two-sided
