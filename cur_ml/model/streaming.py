"""Streaming training: four SGD heads over hashed features, learnt chunk by chunk.

The production model (`AppealClassifier`) holds every row's features at once and fits
liblinear heads on them, so its memory grows with the rows and its time faster than
them (``benchmarks/growth.py``). Here nothing grows with the rows: features are hashed
(`HashingVectorizer`: no vocabulary to fit or keep) and each head learns with
`SGDClassifier.partial_fit` one chunk at a time, from a CSV read in chunks. Memory is
the chunk plus the weights (classes × ``n_features``). It is the measured remedy of
issue 13 for a region too large for one worker, not the model the service serves.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.utils.validation import check_is_fitted

from cur_ml.data import LABEL_COLUMNS, URGENCIES, records_to_frame
from cur_ml.errors import DataError, InputError
from cur_ml.model.features import slug
from cur_ml.model.taxonomy import Taxonomy

__all__ = ["StreamingAppealClassifier"]

HEADS = LABEL_COLUMNS


#: Only its role rules are used (the agency's district replaced by a slot, and back).
_TAXONOMY = Taxonomy(category_of={}, urgency_of={}, deadline_of={}, districts=[], agencies=[])


def _roles(agencies: pd.Series, districts: pd.Series) -> np.ndarray:
    """Each agency as a role of its district ("СПб ГКУ ЖА {district} района"): one label
    for eighteen district agencies, the district fills it back in."""
    return np.array(
        [_TAXONOMY.role_of(a, d) for a, d in zip(agencies, districts, strict=True)], dtype=object
    )


def _lemmatize(texts: list[str]) -> list[str]:
    from cur_ml.text import RussianPreprocessor

    return RussianPreprocessor().fit([]).transform(texts)


_FORM_FIELDS = ("city_object", "district", "municipality", "address")


def _form_tokens(frame: pd.DataFrame, lemmas: list[str]) -> list[str]:
    """The portal's fields as tokens, and each lemma crossed with the object type
    ("мусор" in a yard is another problem than on a street)."""
    out = []
    rows = zip(*(frame[field] for field in _FORM_FIELDS), strict=True)
    for values, lem in zip(rows, lemmas, strict=True):
        tokens = [f"{f}={slug(v)}" for f, v in zip(_FORM_FIELDS, values, strict=True) if v]
        if obj := values[0]:
            tokens += [f"{slug(obj)}|{w}" for w in lem.split()]
        out.append(" ".join(tokens))
    return out


class StreamingAppealClassifier(BaseEstimator):
    """Category, reason, urgency and agency from hashed features, one `SGDClassifier` each.

    Parameters
    ----------
    n_features : size of the hashed feature space (shared by every block).
    char_ngrams : character n-gram range of the raw text (carries typos); None: off.
    alpha, agency_alpha : L2 regularisation of the topic heads and of the agency head (chosen
        on the dev split among 3e-6 .. 1e-4; the agency wants more).
    epochs : passes over the data in `fit` and `fit_csv`.
    chunk_size : rows learnt at a time (memory is bounded by it, not by the rows).
    n_jobs : threads per head (one-vs-rest classes are fitted in parallel).
    random_state : seed of the SGD heads and of the shuffling inside each chunk.
    """

    def __init__(
        self,
        n_features: int = 2**19,
        char_ngrams: tuple[int, int] | None = (3, 5),
        alpha: float = 3e-5,
        agency_alpha: float = 1e-4,
        epochs: int = 3,
        chunk_size: int = 20_000,
        n_jobs: int = 2,
        random_state: int = 0,
    ) -> None:
        self.n_features = n_features
        self.char_ngrams = char_ngrams
        self.alpha = alpha
        self.agency_alpha = agency_alpha
        self.epochs = epochs
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------ features
    def _vectorizers(self) -> dict[str, HashingVectorizer]:
        common = {"n_features": self.n_features, "alternate_sign": False, "dtype": np.float32}
        blocks = {
            "words": HashingVectorizer(
                token_pattern=r"\S+", lowercase=False, ngram_range=(1, 2), **common
            ),
            "form": HashingVectorizer(token_pattern=r"\S+", lowercase=False, **common),
        }
        if self.char_ngrams:
            blocks["chars"] = HashingVectorizer(
                analyzer="char_wb", ngram_range=self.char_ngrams, **common
            )
        return blocks

    def features(self, X: pd.DataFrame) -> sp.csr_matrix:
        """Hashed features of appeals: lemma n-grams + form fields and crosses + characters,
        each block l2-normalised, summed into one space of `n_features` columns."""
        frame = records_to_frame(X)
        texts = frame["text"].tolist()
        lemmas = _lemmatize(texts)
        inputs = {"words": lemmas, "form": _form_tokens(frame, lemmas), "chars": texts}
        blocks = self._vectorizers()
        return sum(v.transform(inputs[name]) for name, v in blocks.items()).tocsr()

    # ----------------------------------------------------------- learning
    @staticmethod
    def label_sets(X: pd.DataFrame, y: pd.DataFrame) -> dict[str, set[str]]:
        """The labels of each head in these rows: what `partial_fit` needs as `classes`
        (union them over every chunk). The agency head learns agency *roles*."""
        sets = {h: set(y[h]) for h in HEADS if h != "agency"}
        sets["agency"] = set(_roles(y["agency"], records_to_frame(X)["district"]))
        return sets

    def partial_fit(
        self,
        X: pd.DataFrame,
        y: pd.DataFrame,
        classes: dict[str, set[str]] | None = None,
    ) -> StreamingAppealClassifier:
        """Learn from one chunk: `X` appeals, `y` their label columns.

        `classes` (`label_sets` of all the data) is required on the first call: an SGD head
        cannot grow a label later.
        """
        if not hasattr(self, "heads_"):
            if classes is None:
                raise InputError("partial_fit: the first call needs classes (see label_sets)")
            missing = [h for h in HEADS if h not in classes]
            if missing:
                raise InputError(f"partial_fit: classes lacks head(s) {', '.join(missing)}")
            self.heads_ = {
                head: SGDClassifier(
                    loss="hinge",
                    alpha=self.agency_alpha if head == "agency" else self.alpha,
                    n_jobs=self.n_jobs,
                    random_state=self.random_state,
                )
                for head in HEADS
            }
            self.classes_ = {h: np.asarray(sorted(classes[h])) for h in HEADS}
            self.role_agencies_: dict[str, Counter] = {}
            self.n_rows_seen_ = 0
            self.stage_seconds_ = {"features": 0.0, "partial_fit": 0.0}
            self.rng_ = np.random.default_rng(self.random_state)
        started = time.perf_counter()
        frame = records_to_frame(X)
        features = self.features(frame)
        roles = _roles(y["agency"], frame["district"])
        for role, agency in zip(roles, y["agency"], strict=True):
            self.role_agencies_.setdefault(role, Counter())[agency] += 1
        targets = {**{h: np.asarray(y[h], dtype=object) for h in HEADS}, "agency": roles}
        order = self.rng_.permutation(features.shape[0])  # SGD wants shuffled rows
        features = features[order]
        learnt = time.perf_counter()
        for head, model in self.heads_.items():
            model.partial_fit(features, targets[head][order], classes=self.classes_[head])
        self.stage_seconds_["features"] += learnt - started
        self.stage_seconds_["partial_fit"] += time.perf_counter() - learnt
        self.n_rows_seen_ += features.shape[0]
        return self

    def _reset(self) -> None:
        for attr in ("heads_", "classes_", "n_rows_seen_", "role_agencies_"):
            self.__dict__.pop(attr, None)

    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> StreamingAppealClassifier:
        """`epochs` passes over a frame in chunks of `chunk_size`."""
        self._reset()
        classes = self.label_sets(X, y)
        for _ in range(self.epochs):
            for start in range(0, len(X), self.chunk_size):
                part = slice(start, start + self.chunk_size)
                self.partial_fit(X.iloc[part], y.iloc[part], classes=classes)
        self.n_rows_seen_ //= self.epochs  # rows of the data, not rows learnt
        return self

    def fit_csv(self, path: str | Path, split: str | None = None) -> StreamingAppealClassifier:
        """`epochs` passes over a CSV read `chunk_size` rows at a time (rows of `split` only).

        A first pass reads the label columns alone to learn every label. Rows with an empty
        text, a missing label or an unknown urgency are skipped, as `load_appeals` does.
        """
        self._reset()
        started = time.perf_counter()
        classes: dict[str, set[str]] = {h: set() for h in HEADS}
        for chunk in self._chunks(path, split, labels_only=True):
            for head, labels in self.label_sets(chunk, chunk).items():
                classes[head] |= labels
        if not classes["reason"]:
            raise DataError(
                f"no usable rows in {path}" + (f" for split {split!r}" if split else "")
            )
        label_pass = time.perf_counter() - started
        read = 0.0
        for _ in range(self.epochs):
            chunks = self._chunks(path, split)
            while True:
                t0 = time.perf_counter()
                chunk = next(chunks, None)
                read += time.perf_counter() - t0
                if chunk is None:
                    break
                self.partial_fit(chunk, chunk[list(HEADS)], classes=classes)
        self.n_rows_seen_ //= self.epochs  # rows of the data, not rows learnt
        self.stage_seconds_ = {"labels pass": label_pass, "read CSV": read, **self.stage_seconds_}
        return self

    def _chunks(self, path: str | Path, split: str | None, labels_only: bool = False) -> Iterator:
        """Usable rows of a CSV, `chunk_size` at a time."""
        columns = pd.read_csv(path, nrows=0).columns
        missing = [c for c in ("text", "district", *HEADS) if c not in columns]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)} in {path}")
        if split is not None and "split" not in columns:
            raise DataError(f"split {split!r} given but {path} has no 'split' column")
        keep = [*HEADS, "text", "district", *(["split"] if split is not None else [])]
        reader = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            chunksize=self.chunk_size,
            usecols=keep if labels_only else None,
        )
        for chunk in reader:
            if split is not None:
                chunk = chunk[chunk["split"] == split]
            labels = chunk[list(HEADS)].apply(lambda s: s.str.strip())
            usable = (
                (chunk["text"].str.strip() != "")
                & (labels != "").all(axis=1)
                & labels["urgency"].isin(URGENCIES)
            )
            if usable.any():
                chunk = chunk[usable].reset_index(drop=True)
                chunk[list(HEADS)] = labels[usable].reset_index(drop=True)
                yield chunk

    # ---------------------------------------------------------- prediction
    def _scores(self, features: sp.csr_matrix) -> dict[str, np.ndarray]:
        """Head → decision scores (rows × `classes_[head]`), two columns for two labels."""
        check_is_fitted(self, "heads_")
        out = {}
        for head, model in self.heads_.items():
            scores = model.decision_function(features)
            out[head] = np.column_stack([-scores, scores]) if scores.ndim == 1 else scores
        return out

    def predict_proba(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Head → softmax of the decision scores (rows × `classes_[head]`; agency: roles).

        Their argmax is `predict`'s label; they are not calibrated (no held-out rows here).
        """
        check_is_fitted(self, "heads_")
        return {h: softmax(s, axis=1) for h, s in self._scores(self.features(X)).items()}

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """The likeliest label of every head, one column each; the agency is the likeliest
        role filled with the appeal's district (else the role's most common agency)."""
        check_is_fitted(self, "heads_")
        frame = records_to_frame(X)
        scores = self._scores(self.features(frame))
        out = {h: self.classes_[h][s.argmax(axis=1)] for h, s in scores.items()}
        out["agency"] = np.array(
            [
                _TAXONOMY.agency_of(role, district)
                or self.role_agencies_[role].most_common(1)[0][0]
                for role, district in zip(out["agency"], frame["district"], strict=True)
            ],
            dtype=object,
        )
        return pd.DataFrame(out)
