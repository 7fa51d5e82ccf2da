"""Scores → calibrated probabilities by temperature scaling (one parameter per head)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

__all__ = ["fit_temperature", "reliability_table", "softmax_t"]


def softmax_t(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise softmax of decision scores divided by the temperature."""
    return softmax(scores / temperature, axis=1)


def fit_temperature(scores: np.ndarray, y_index: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of held-out labels.

    Rows whose label the head never saw (index -1) are left out.
    """
    known = y_index >= 0
    if known.sum() < 10:
        return 0.1
    s, y = scores[known], y_index[known]

    def nll(log_t: float) -> float:
        return -log_softmax(s / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean()

    best = minimize_scalar(nll, bounds=(np.log(1e-3), np.log(10.0)), method="bounded")
    return float(np.exp(best.x))


def reliability_table(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10
) -> tuple[list[dict], float]:
    """Per confidence bin: count, mean confidence, accuracy; and the expected calibration error."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, ece = [], 0.0
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if not n:
            continue
        conf, acc = float(confidence[mask].mean()), float(correct[mask].mean())
        ece += n / len(confidence) * abs(conf - acc)
        rows.append(
            {
                "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                "n": n,
                "confidence": round(conf, 4),
                "accuracy": round(acc, 4),
            }
        )
    return rows, round(float(ece), 4)
