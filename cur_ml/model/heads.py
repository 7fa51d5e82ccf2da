"""A linear one-vs-rest head with temperature-calibrated probabilities."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from cur_ml.model.calibration import fit_temperature, softmax_t

__all__ = ["LinearHead"]


class LinearHead(BaseEstimator):
    """LinearSVC scores turned into probabilities by a fitted temperature.

    Weights are kept as float32 ``coef_`` (classes × features) so that scoring
    is one sparse-dense product and the model stays small on disk.
    """

    def __init__(self, C: float = 0.3, temperature: float = 0.1) -> None:
        self.C = C
        self.temperature = temperature

    def fit(
        self, X: sp.csr_matrix, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> LinearHead:
        classes = np.unique(y)
        self.classes_ = classes
        self.temperature_ = self.temperature
        if len(classes) == 1:
            self.coef_ = np.zeros((1, X.shape[1]), dtype=np.float32)
            self.intercept_ = np.zeros(1, dtype=np.float32)
            return self
        svc = LinearSVC(C=self.C, max_iter=3000).fit(X, y, sample_weight=sample_weight)
        coef, intercept = svc.coef_, svc.intercept_
        if len(classes) == 2:  # sklearn keeps one row for two classes
            coef, intercept = np.vstack([-coef, coef]), np.r_[-intercept, intercept]
        self.coef_ = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept_ = intercept.astype(np.float32)
        return self

    def scores(self, X: sp.csr_matrix) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(X @ self.coef_.T) + self.intercept_

    def calibrate(self, X: sp.csr_matrix, y: np.ndarray) -> LinearHead:
        """Fit the temperature on held-out rows (labels unknown to the head are ignored)."""
        index = {c: i for i, c in enumerate(self.classes_)}
        y_index = np.array([index.get(v, -1) for v in y])
        self.temperature_ = fit_temperature(self.scores(X), y_index)
        return self

    def predict_proba(self, X: sp.csr_matrix) -> np.ndarray:
        return softmax_t(self.scores(X), self.temperature_)
