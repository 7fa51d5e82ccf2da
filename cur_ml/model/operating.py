"""Operating points chosen on held-out rows: when to call an appeal acute, when to ask a person.

Both are read off the calibration slice (the newest rows, unseen by the heads
that score them), never set by hand, and stored in the fitted model.
"""

from __future__ import annotations

import numpy as np

__all__ = ["coverage_curve", "review_threshold", "urgency_threshold"]


def urgency_threshold(p_high: np.ndarray, is_high: np.ndarray, miss_cost: float) -> float:
    """Threshold on P(high) that minimises `miss_cost` × missed highs + false alarms.

    A missed acute appeal waits for days; a false alarm costs an operator a glance,
    so `miss_cost` > 1 moves the threshold below 0.5.
    """
    if len(p_high) == 0 or not is_high.any():
        return 1.0 / (1.0 + miss_cost)  # the Bayes threshold for calibrated probabilities
    order = np.argsort(-p_high, kind="stable")
    p, high = p_high[order], is_high[order].astype(float)
    # Calling the first k rows high: misses = highs after k, false alarms = lows before k.
    misses = high.sum() - np.concatenate([[0.0], np.cumsum(high)])
    alarms = np.concatenate([[0.0], np.cumsum(1.0 - high)])
    k = int(np.argmin(miss_cost * misses + alarms))
    if k == 0:
        return float(p[0]) + 1e-9
    if k == len(p):
        return float(p[-1])
    return float((p[k - 1] + p[k]) / 2)


def coverage_curve(
    confidence: np.ndarray, correct: np.ndarray, thresholds: np.ndarray
) -> list[dict[str, float]]:
    """For each threshold: share of appeals at or above it (coverage) and their accuracy."""
    out = []
    for t in thresholds:
        kept = confidence >= t
        out.append(
            {
                "threshold": round(float(t), 4),
                "coverage": round(float(kept.mean()), 4) if len(kept) else 0.0,
                "accuracy": round(float(correct[kept].mean()), 4) if kept.any() else float("nan"),
            }
        )
    return out


def review_threshold(confidence: np.ndarray, correct: np.ndarray, target_accuracy: float) -> float:
    """Lowest confidence threshold whose kept appeals reach `target_accuracy`.

    Appeals below it go to an operator; the rest are routed by the model alone.
    """
    if len(confidence) == 0:
        return 0.5
    order = np.argsort(-confidence, kind="stable")
    conf, ok = confidence[order], correct[order].astype(float)
    accuracy = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    # Accuracy of the top-k rows for every k; take the largest k that still meets the target.
    meets = np.flatnonzero(accuracy >= target_accuracy)
    if not len(meets):
        return float(conf[0]) + 1e-9
    k = int(meets[-1])
    return float(conf[k])
