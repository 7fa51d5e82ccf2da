"""``RussianPreprocessor``: appeals -> space-joined lemmas, as a scikit-learn transformer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from cur_ml.errors import InputError
from cur_ml.text.engine import TokenStream, get_engine
from cur_ml.text.tokenize import Token

__all__ = ["RussianPreprocessor"]


def _as_text(value: Any, max_chars: int) -> str:
    """A str cut to ``max_chars``; None, NaN and anything that is not a str become ""."""
    if isinstance(value, str):
        return value[:max_chars] if len(value) > max_chars else value
    return ""


def _check_texts(X: Any) -> Iterable[Any]:
    """X itself, or the single column of a one-column table (``df[["text"]]``)."""
    if isinstance(X, str | bytes):
        raise InputError(
            f"expected an iterable of texts, got a single {type(X).__name__} "
            f"({X[:40]!r}); wrap it in a list"
        )
    if getattr(X, "ndim", 1) == 2:
        if X.shape[1] != 1:
            raise InputError(f"expected one column of texts, got shape {X.shape}")
        return X.iloc[:, 0] if hasattr(X, "iloc") else X[:, 0]
    if not isinstance(X, Iterable):
        raise InputError(f"expected an iterable of texts, got {type(X).__name__}")
    return X


class RussianPreprocessor(TransformerMixin, BaseEstimator):
    """Normalise, tokenise (spaCy) and lemmatise (pymorphy3) Russian appeals.

    ``transform`` returns one string per text, the kept lemmas joined by spaces, ready
    for ``TfidfVectorizer(analyzer=str.split)``. Texts are processed in batches, so
    memory stays flat; one text is a batch of one and goes the same way.

    Parameters
    ----------
    batch_size : int, default=500
        Texts tokenised together in one spaCy call.
    drop_stopwords : bool, default=True
        Drop :data:`cur_ml.text.STOPWORDS` (negation is never dropped).
    max_chars : int, default=20000
        Longer texts are cut to this many characters before processing.

    Attributes
    ----------
    n_texts_seen_ : int
        Number of texts given to ``fit``.
    """

    def __init__(
        self, batch_size: int = 500, drop_stopwords: bool = True, max_chars: int = 20_000
    ) -> None:
        self.batch_size = batch_size
        self.drop_stopwords = drop_stopwords
        self.max_chars = max_chars

    def _check_params(self) -> None:
        for name in ("batch_size", "max_chars"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive int, got {value!r}")

    def fit(self, X: Iterable[Any], y: Any = None) -> RussianPreprocessor:
        """Check the parameters and count the texts; nothing is learned."""
        self._check_params()
        self.n_texts_seen_ = sum(1 for _ in _check_texts(X))
        return self

    def _batches(self, X: Iterable[Any], size: int) -> Iterator[list[str]]:
        it = iter(_check_texts(X))  # checked now, not at the first next()
        return iter(lambda: [_as_text(v, self.max_chars) for v in islice(it, size)], [])

    def pipe(self, X: Iterable[Any], batch_size: int | None = None) -> Iterator[list[Token]]:
        """Yield the kept tokens of each text, streaming ``batch_size`` texts at a time.

        Offsets are into the original text: ``text[token.start:token.end]`` is the word.
        """
        check_is_fitted(self)
        self._check_params()
        return self._pipe(self._batches(X, batch_size or self.batch_size))

    def _pipe(self, batches: Iterator[list[str]]) -> Iterator[list[Token]]:
        engine = get_engine()
        for batch in batches:
            yield from engine.run(batch, self.drop_stopwords).tokens(batch)

    def stream(self, X: Iterable[Any]) -> TokenStream:
        """The kept tokens of every text, flat (`TokenStream`), batch by batch."""
        check_is_fitted(self)
        self._check_params()
        engine = get_engine()
        parts = [
            engine.run(batch, self.drop_stopwords).stream(batch)
            for batch in self._batches(X, self.batch_size)
        ]
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return TokenStream([], empty, empty, np.zeros(1, dtype=np.int64), [])
        return TokenStream.concat(parts)

    def analyze(self, text: Any) -> list[Token]:
        """Kept tokens of one text (a batch of one)."""
        return next(self.pipe([text]))

    def transform(self, X: Iterable[Any]) -> list[str]:
        """Space-joined lemmas of each text, in input order."""
        check_is_fitted(self)
        self._check_params()
        engine = get_engine()
        out: list[str] = []
        for batch in self._batches(X, self.batch_size):
            out.extend(engine.run(batch, self.drop_stopwords).strings())
        return out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
