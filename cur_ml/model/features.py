"""Appeal → sparse features: lemma n-grams, place, and object-type × lemma crosses.

The citizen's choice of object type (Дом, Двор, Улица, ...) changes what the
same words mean ("мусор" in a yard vs on a street), so lemmas are also crossed
with it; a linear head then learns those interactions cheaply.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from cur_ml.data import Columns, appeal_columns
from cur_ml.text import RussianPreprocessor

__all__ = ["AppealFeaturizer", "meta_tokens"]


def _slug(value: str) -> str:
    return "_".join(value.split())


def meta_tokens(frame: Columns) -> list[str]:
    """Place and object type as tokens: 'obj=Дом dist=Невский muni=... addr=1'."""
    out = []
    for obj, dist, muni, addr in zip(
        frame["city_object"],
        frame["district"],
        frame["municipality"],
        frame["address"],
        strict=True,
    ):
        parts = [f"addr={int(bool(addr))}"]
        if obj:
            parts.append(f"obj={_slug(obj)}")
        if dist:
            parts.append(f"dist={_slug(dist)}")
        if muni:
            parts.append(f"muni={_slug(muni)}")
        out.append(" ".join(parts))
    return out


def _columns(frame: Columns | pd.DataFrame) -> Columns:
    return appeal_columns(frame) if isinstance(frame, pd.DataFrame) else frame


def _crosses(lemmas: list[str], objects: list[str]) -> list[str]:
    return [
        " ".join(f"{_slug(obj)}|{w}" for w in lem.split()) if obj else ""
        for lem, obj in zip(lemmas, objects, strict=True)
    ]


class AppealFeaturizer(BaseEstimator, TransformerMixin):
    """Turn a frame of appeals into one sparse matrix.

    Parameters
    ----------
    ngram_range : lemma n-grams of the text part.
    min_df : drop lemmas / crosses seen in fewer training appeals.
    city_object_dropout : share of training rows whose object type is hidden
        while fitting, so the model also works for sources without that menu.
    random_state : seed of that dropout.
    """

    def __init__(
        self,
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 2,
        city_object_dropout: float = 0.1,
        random_state: int = 0,
    ) -> None:
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.city_object_dropout = city_object_dropout
        self.random_state = random_state

    def fit(self, frame: Columns | pd.DataFrame, y: object = None) -> AppealFeaturizer:
        self.fit_transform(frame)
        return self

    def fit_transform(self, frame: Columns | pd.DataFrame, y: object = None) -> sp.csr_matrix:
        frame = _columns(frame)
        self.preprocessor_ = RussianPreprocessor().fit(frame["text"])
        lemmas = self.preprocessor_.transform(frame["text"])
        frame = self._drop_objects(frame)
        self.text_ = TfidfVectorizer(
            token_pattern=r"\S+",
            lowercase=False,
            ngram_range=self.ngram_range,
            min_df=self.min_df,
            sublinear_tf=True,
            dtype=np.float32,
        )
        self.cross_ = TfidfVectorizer(
            token_pattern=r"\S+",
            lowercase=False,
            min_df=self.min_df,
            sublinear_tf=True,
            dtype=np.float32,
        )
        self.meta_ = CountVectorizer(
            token_pattern=r"\S+", lowercase=False, binary=True, dtype=np.float32
        )
        blocks = [
            self.text_.fit_transform(lemmas),
            self.cross_.fit_transform(_crosses(lemmas, frame["city_object"])),
            self.meta_.fit_transform(meta_tokens(frame)),
        ]
        self.n_text_features_ = blocks[0].shape[1]
        return sp.hstack(blocks, format="csr")

    def _drop_objects(self, frame: Columns) -> Columns:
        if not self.city_object_dropout:
            return frame
        rng = np.random.default_rng(self.random_state)
        hide = rng.random(len(frame["city_object"])) < self.city_object_dropout
        objects = ["" if h else obj for h, obj in zip(hide, frame["city_object"], strict=True)]
        return {**frame, "city_object": objects}

    def transform(
        self, frame: Columns | pd.DataFrame, lemmas: list[str] | None = None
    ) -> sp.csr_matrix:
        """Features of `frame`; pass `lemmas` when the texts were already lemmatised."""
        check_is_fitted(self, "meta_")
        frame = _columns(frame)
        if lemmas is None:
            lemmas = self.preprocessor_.transform(frame["text"])
        return sp.hstack(
            [
                self.text_.transform(lemmas),
                self.cross_.transform(_crosses(lemmas, frame["city_object"])),
                self.meta_.transform(meta_tokens(frame)),
            ],
            format="csr",
        )

    def feature_names(self) -> np.ndarray:
        check_is_fitted(self, "meta_")
        return np.concatenate(
            [
                self.text_.get_feature_names_out(),
                self.cross_.get_feature_names_out(),
                self.meta_.get_feature_names_out(),
            ]
        )
