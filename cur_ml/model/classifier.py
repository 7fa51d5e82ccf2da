"""The four-head appeal classifier: one fitted object that training evaluates and the API serves.

Design: one calibrated head scores the fine `reason`; `category` and `urgency`
are its marginals (a reason belongs to one category and implies one deadline),
so the three topic heads can never contradict each other. A second head scores
the agency *role* ("СПб ГКУ ЖА {district} района", "Комитет по транспорту", ...)
from the text, the place and the decoded reason × district; the appeal's
district fills the role in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.utils.validation import check_is_fitted

from cur_ml.data import Columns, appeal_columns, take
from cur_ml.model.features import AppealFeaturizer
from cur_ml.model.heads import LinearHead
from cur_ml.model.taxonomy import Taxonomy
from cur_ml.text import Token

__all__ = ["HEADS", "AppealClassifier", "HeadScores"]

HEADS = ("category", "reason", "urgency", "agency")
Progress = Callable[[str], None]


class HeadScores:
    """Probabilities of every head for a batch: `labels[head]` and `proba[head]` (rows × labels)."""

    def __init__(
        self,
        labels: dict[str, np.ndarray],
        proba: dict[str, np.ndarray],
        decoded: dict[str, np.ndarray],
        lemmas: list[str],
        tokens: list[list[Token]] | None = None,
    ) -> None:
        self.labels, self.proba, self.decoded, self.lemmas = labels, proba, decoded, lemmas
        #: Tokens with offsets, when the caller asked for them (explanations).
        self.tokens = tokens


def _indicator(keys: np.ndarray, mapping: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Columns = distinct mapped values; M[i, j] = 1 when keys[i] maps to value j."""
    values = np.array(sorted({mapping[k] for k in keys}))
    col = {v: j for j, v in enumerate(values)}
    m = np.zeros((len(keys), len(values)), dtype=np.float64)
    m[np.arange(len(keys)), [col[mapping[k]] for k in keys]] = 1.0
    return values, m


def _recency_weights(created_at: pd.Series, half_life_days: float | None) -> np.ndarray | None:
    """Newer appeals weigh more: routing rules drift month to month."""
    if not half_life_days:
        return None
    when = pd.to_datetime(created_at, errors="coerce", format="mixed")
    if when.isna().all():
        return None
    age = (when.max() - when).dt.total_seconds().fillna(0).to_numpy() / 86400.0
    return np.power(0.5, age / half_life_days)


class AppealClassifier(BaseEstimator):
    """Predicts category, reason, urgency and agency of an appeal with calibrated probabilities.

    Parameters
    ----------
    reason_C, agency_C : regularisation of the two linear heads.
    agency_half_life_days : recency weighting of the agency head (None: off).
    calibration_share : newest share of the training rows held out to fit the
        temperatures before the final fit on all rows.
    min_df, city_object_dropout : passed to :class:`AppealFeaturizer`.
    """

    def __init__(
        self,
        reason_C: float = 0.3,
        agency_C: float = 0.3,
        agency_half_life_days: float | None = 80.0,
        calibration_share: float = 0.15,
        min_df: int = 2,
        city_object_dropout: float = 0.1,
        random_state: int = 0,
    ) -> None:
        self.reason_C = reason_C
        self.agency_C = agency_C
        self.agency_half_life_days = agency_half_life_days
        self.calibration_share = calibration_share
        self.min_df = min_df
        self.city_object_dropout = city_object_dropout
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        frame: pd.DataFrame,
        sample_weight: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> AppealClassifier:
        """Fit on a frame with input columns and the labels category/reason/urgency/agency."""
        step = progress or (lambda _msg: None)
        frame = frame.reset_index(drop=True)
        self.taxonomy_ = tax = Taxonomy.from_labels(frame)
        cols = appeal_columns(frame)
        step("features")
        self.featurizer_ = AppealFeaturizer(
            min_df=self.min_df,
            city_object_dropout=self.city_object_dropout,
            random_state=self.random_state,
        )
        X = self.featurizer_.fit_transform(cols)
        roles = np.array(
            [tax.role_of(a, d) for a, d in zip(frame["agency"], frame["district"], strict=True)]
        )
        reasons = frame["reason"].to_numpy()
        base_w = np.ones(len(frame)) if sample_weight is None else np.asarray(sample_weight, float)
        recency = _recency_weights(frame["created_at"], self.agency_half_life_days)
        agency_w = base_w if recency is None else base_w * recency
        self._set_maps()
        self.roles_ = sorted(set(roles))

        n_cal = int(len(frame) * self.calibration_share)
        temperatures = {"reason": 0.1, "agency": 0.1}
        if n_cal >= 30:
            order = np.argsort(
                pd.to_datetime(frame["created_at"], errors="coerce", format="mixed")
                .fillna(pd.Timestamp(0))
                .to_numpy(),
                kind="stable",
            )
            fit_idx, cal_idx = np.sort(order[:-n_cal]), np.sort(order[-n_cal:])
            step("calibration fit")
            self._fit_heads(
                X[fit_idx],
                reasons[fit_idx],
                roles[fit_idx],
                take(cols, fit_idx),
                base_w[fit_idx],
                agency_w[fit_idx],
            )
            step("calibrate")
            cal = take(cols, cal_idx)
            self.reason_head_.calibrate(X[cal_idx], reasons[cal_idx])
            decoded = self._decode_reason(self.reason_head_.predict_proba(X[cal_idx]))
            self.agency_head_.calibrate(
                self._agency_features(X[cal_idx], decoded, cal), roles[cal_idx]
            )
            temperatures = {
                "reason": self.reason_head_.temperature_,
                "agency": self.agency_head_.temperature_,
            }
        step("final fit")
        self._fit_heads(X, reasons, roles, cols, base_w, agency_w)
        self.reason_head_.temperature_ = temperatures["reason"]
        self.agency_head_.temperature_ = temperatures["agency"]
        self.seen_reason_roles_ = set(zip(reasons, roles, strict=True))
        return self

    def _set_maps(self) -> None:
        tax = self.taxonomy_
        reasons = np.array(tax.reasons)
        self.categories_, self.reason_to_category_ = _indicator(reasons, tax.category_of)
        self.urgencies_, self.reason_to_urgency_ = _indicator(reasons, tax.urgency_of)

    def _fit_heads(self, X, reasons, roles, frame, reason_w, agency_w) -> None:
        # Every reason of the taxonomy, even one only the calibration rows have.
        self.reason_head_ = LinearHead(C=self.reason_C).fit(
            X, reasons, sample_weight=reason_w, classes=self.taxonomy_.reasons
        )
        # In-sample decoded reasons: as useful as out-of-fold ones here, at a third of the cost.
        decoded = self._decode_reason(self.reason_head_.predict_proba(X))
        self.agency_cross_ = CountVectorizer(
            token_pattern=r"\S+", lowercase=False, binary=True, dtype=np.float32
        )
        self.agency_cross_.fit(self._cross_tokens(decoded, frame))
        self.agency_head_ = LinearHead(C=self.agency_C).fit(
            self._agency_features(X, decoded, frame),
            roles,
            sample_weight=agency_w,
            classes=self.roles_,
        )

    # -------------------------------------------------------------- predict
    def _decode_reason(self, p_reason: np.ndarray) -> np.ndarray:
        """Category by its marginal, then the best reason inside it (never contradictory)."""
        best_cat = (p_reason @ self.reason_to_category_).argmax(axis=1)
        member = self.reason_to_category_[:, best_cat].T.astype(bool)
        return np.where(member, p_reason, -1.0).argmax(axis=1)

    def _cross_tokens(self, reason_index: np.ndarray, frame: Columns) -> list[str]:
        return [
            f"r={r} rd={r}|{'_'.join(d.split())}"
            for r, d in zip(reason_index, frame["district"], strict=True)
        ]

    def _agency_features(self, X, reason_index, frame) -> sp.csr_matrix:
        return sp.hstack(
            [X, self.agency_cross_.transform(self._cross_tokens(reason_index, frame))], format="csr"
        )

    def score(self, frame: Columns | pd.DataFrame, with_tokens: bool = False) -> HeadScores:
        """Probabilities of every head for a batch of appeals (see `appeal_columns`).

        `with_tokens` keeps each text's tokens and offsets (one tokenisation serves both).
        """
        check_is_fitted(self, "agency_head_")
        if isinstance(frame, pd.DataFrame):
            frame = appeal_columns(frame)
        known = self.taxonomy_.districts
        frame = {**frame, "district": [d if d in known else "" for d in frame["district"]]}
        preprocessor = self.featurizer_.preprocessor_
        tokens = list(preprocessor.pipe(frame["text"])) if with_tokens else None
        lemmas = (
            [" ".join(t.lemma for t in toks) for toks in tokens]
            if tokens is not None
            else preprocessor.transform(frame["text"])
        )
        X = self.featurizer_.transform(frame, lemmas=lemmas)
        p_reason = self.reason_head_.predict_proba(X)
        reason_idx = self._decode_reason(p_reason)
        p_role = self.agency_head_.predict_proba(self._agency_features(X, reason_idx, frame))
        return HeadScores(
            labels={
                "reason": self.reason_head_.classes_,
                "category": self.categories_,
                "urgency": self.urgencies_,
                "agency": self.agency_head_.classes_,
            },
            proba={
                "reason": p_reason,
                "category": p_reason @ self.reason_to_category_,
                "urgency": p_reason @ self.reason_to_urgency_,
                "agency": p_role,
            },
            decoded={"reason": reason_idx},
            lemmas=lemmas,
            tokens=tokens,
        )
