"""Appeal → sparse features: lemma n-grams, and lemmas crossed with the object type.

The citizen's choice of object type (Дом, Двор, Улица, ...) changes what the
same words mean ("мусор" in a yard vs on a street), so lemmas are also crossed
with it; a linear head then learns those interactions cheaply. Sources without
the portal's menu have no object type: the classifier integrates it out
(see `cur_ml.model.classifier`) instead of reading its absence as a value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from cur_ml.data import Columns, appeal_columns
from cur_ml.model.ngrams import (
    CharNgrams,
    LemmaIds,
    LemmaVocabulary,
    TokenVocabulary,
    hstack,
)
from cur_ml.text import RussianPreprocessor
from cur_ml.text.engine import TokenStream

__all__ = ["AppealFeaturizer", "slug"]


def slug(value: str) -> str:
    """A label as one whitespace-free token."""
    return "_".join(value.split())


def _crosses(lemmas: Sequence[str], objects: Sequence[str]) -> list[str]:
    return [
        " ".join(f"{slug(obj)}|{w}" for w in lem.split()) if obj else ""
        for lem, obj in zip(lemmas, objects, strict=True)
    ]


def _flat(text: str) -> str:
    """Character n-grams see lowercase words and single spaces (ё written е)."""
    return " ".join(text.lower().replace("ё", "е").split())


def _tfidf(ngram_range: tuple[int, int], min_df: int) -> TfidfVectorizer:
    return TfidfVectorizer(
        token_pattern=r"\S+",
        lowercase=False,
        ngram_range=ngram_range,
        min_df=min_df,
        sublinear_tf=True,
        dtype=np.float32,
    )


class AppealFeaturizer(BaseEstimator):
    """Text block (lemma n-grams) and object block (object one-hot + object × lemma crosses).

    Layout of `with_object`: ``[text | crosses | object]``; `n_text_features_`
    is where the crosses start (explanations rely on it).

    Parameters
    ----------
    ngram_range : lemma n-grams of the text block.
    min_df : drop lemmas / crosses seen in fewer training appeals.
    """

    def __init__(
        self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2, char_weight: float = 0.0
    ) -> None:
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.char_weight = char_weight

    def fit(
        self, X: Columns | pd.DataFrame, y: object = None, lemmas: Sequence[str] | None = None
    ) -> AppealFeaturizer:
        """Learn the vocabularies from appeals; pass `lemmas` when the texts are lemmatised."""
        self.fit_text(X, lemmas)
        return self

    def fit_text(
        self, X: Columns | pd.DataFrame, lemmas: Sequence[str] | None = None
    ) -> sp.csr_matrix:
        """Fit, and return the text block of the training appeals (one pass over them)."""
        columns = appeal_columns(X) if isinstance(X, pd.DataFrame) else X
        self.preprocessor_ = RussianPreprocessor().fit([])
        if lemmas is None:
            lemmas = self.preprocessor_.transform(columns["text"])
        objects = columns["city_object"]
        self.text_ = _tfidf(self.ngram_range, self.min_df)
        blocks = [self.text_.fit_transform(lemmas)]
        self.chars_ = None
        if self.char_weight:
            self.chars_ = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(4, 4),
                min_df=3,
                sublinear_tf=True,
                dtype=np.float32,
                preprocessor=_flat,
            )
            blocks.append(self.chars_.fit_transform(columns["text"]) * self.char_weight)
        self.cross_ = _tfidf((1, 1), self.min_df).fit(_crosses(lemmas, objects))
        self.object_ = CountVectorizer(
            token_pattern=r"\S+", lowercase=False, binary=True, dtype=np.float32
        ).fit([f"obj={slug(o)}" for o in objects if o])
        self.objects_ = sorted({o for o in objects if o})
        self.n_word_features_ = len(self.text_.vocabulary_)
        self.n_text_features_ = self.n_word_features_ + (
            len(self.chars_.vocabulary_) if self.chars_ is not None else 0
        )
        self._compile()
        return sp.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0].tocsr()

    def _compile(self) -> None:
        """Array forms of the fitted vocabularies (`cur_ml.model.ngrams`): serving uses them."""
        self.lemma_vocabulary_ = LemmaVocabulary(self.text_, self.cross_, map(slug, self.objects_))
        self.char_ngrams_ = CharNgrams(self.chars_) if self.chars_ is not None else None
        self.object_tokens_ = TokenVocabulary(self.object_)

    def encode(self, lemmas: Sequence[str] | LemmaIds) -> LemmaIds:
        """Space-joined lemma strings as token ids (once per batch; every block reuses them)."""
        if isinstance(lemmas, LemmaIds):
            return lemmas
        if not hasattr(self, "lemma_vocabulary_"):  # a model saved before compiling existed
            self._compile()
        return self.lemma_vocabulary_.encode(lemmas)

    def encode_stream(self, stream: TokenStream) -> LemmaIds:
        """The lemma ids of a token stream (no strings joined and split again)."""
        if not hasattr(self, "lemma_vocabulary_"):
            self._compile()
        return self.lemma_vocabulary_.encode_tokens(stream.lemmas, stream.indptr)

    def transform(
        self, X: Columns | pd.DataFrame, lemmas: Sequence[str] | None = None
    ) -> sp.csr_matrix:
        """``[text | crosses | object]`` of appeals, with their own object types."""
        check_is_fitted(self, "text_")
        columns = appeal_columns(X) if isinstance(X, pd.DataFrame) else X
        if lemmas is None:
            lemmas = self.preprocessor_.transform(columns["text"])
        return self.with_object(self.text(lemmas, columns["text"]), lemmas, columns["city_object"])

    def text(
        self, lemmas: Sequence[str] | LemmaIds, texts: Sequence[str] | None = None
    ) -> sp.csr_matrix:
        """The text block alone: lemma n-grams, then character n-grams of `texts`."""
        return self.text_blocks(lemmas, texts)[1]

    def text_blocks(
        self, lemmas: Sequence[str] | LemmaIds, texts: Sequence[str] | None = None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The lemma n-grams, and the whole text block (lemma n-grams, character n-grams)."""
        ids = self.encode(lemmas)
        words = self.lemma_vocabulary_.word_features(ids)
        if self.char_ngrams_ is None:
            return words, words
        chars = self.char_ngrams_.transform(texts)
        if self.char_weight != 1.0:
            chars = chars * self.char_weight
        return words, hstack([words, chars])

    def with_object(
        self, text_block: sp.csr_matrix, lemmas: Sequence[str] | LemmaIds, objects: Sequence[str]
    ) -> sp.csr_matrix:
        """``[text | crosses | object]`` for the given object types ("" leaves them empty)."""
        ids = self.encode(lemmas)
        slugs = [slug(o) for o in objects]
        return hstack(
            [
                text_block,
                self.lemma_vocabulary_.cross_features(ids, slugs),
                self.object_tokens_.transform([[f"obj={s}"] if s else [] for s in slugs]),
            ]
        )

    def feature_names(self) -> np.ndarray:
        check_is_fitted(self, "text_")
        return np.concatenate(
            [
                self.text_.get_feature_names_out(),
                self.cross_.get_feature_names_out(),
                self.object_.get_feature_names_out(),
            ]
        )
