"""A linear one-vs-rest head with temperature-calibrated probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from cur_ml.model.calibration import fit_temperature, softmax_t

__all__ = ["LinearHead"]

#: Score of a label the head never saw in its training rows: never the best.
_ABSENT_SCORE = -10.0


class LinearHead(BaseEstimator):
    """LinearSVC scores turned into probabilities by a fitted temperature.

    Weights are kept as one C-ordered float32 matrix ``weights_`` (features × classes):
    scoring is a single sparse-dense product with no copy, and the model stays small.
    """

    def __init__(self, C: float = 0.3, temperature: float = 0.1) -> None:
        self.C = C
        self.temperature = temperature

    def fit(
        self,
        X: sp.csr_matrix,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        classes: Sequence[str] | None = None,
    ) -> LinearHead:
        """Fit on `X`, `y`; `classes` fixes the label order (labels absent from `y` never win)."""
        present = np.unique(y)
        self.classes_ = np.asarray(sorted(classes) if classes is not None else present)
        self.temperature_ = self.temperature
        weights = np.zeros((X.shape[1], len(self.classes_)), dtype=np.float32)
        intercept = np.full(len(self.classes_), _ABSENT_SCORE, dtype=np.float32)
        column = np.searchsorted(self.classes_, present)
        if len(present) == 1:
            intercept[column] = 0.0
        else:
            svc = LinearSVC(C=self.C, max_iter=3000).fit(X, y, sample_weight=sample_weight)
            coef, icpt = svc.coef_, svc.intercept_
            if len(present) == 2:  # sklearn keeps one row for two classes
                coef, icpt = np.vstack([-coef, coef]), np.r_[-icpt, icpt]
            weights[:, column] = coef.T
            intercept[column] = icpt
        self.weights_ = np.ascontiguousarray(weights)
        self.intercept_ = intercept
        return self

    def scores(self, X: sp.csr_matrix) -> np.ndarray:
        check_is_fitted(self, "weights_")
        return np.asarray(X @ self.weights_) + self.intercept_

    def calibrate(self, X: sp.csr_matrix, y: np.ndarray) -> LinearHead:
        """Fit the temperature on held-out rows (labels unknown to the head are ignored)."""
        index = {c: i for i, c in enumerate(self.classes_)}
        y_index = np.array([index.get(v, -1) for v in y])
        self.temperature_ = fit_temperature(self.scores(X), y_index)
        return self

    def predict_proba(self, X: sp.csr_matrix) -> np.ndarray:
        return softmax_t(self.scores(X), self.temperature_)
