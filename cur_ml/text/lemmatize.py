"""Cached pymorphy3 lemmatisation of single lowercase words.

The lemma is the normal form of pymorphy3's best parse, with ``ё`` written ``е``.
Address abbreviations ("д", "кв", "ул"...) are expanded first, Latin words and single
letters are kept as they are (pymorphy3 would read "е" as "быть", "т" as "так").
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymorphy3 import MorphAnalyzer

__all__ = ["ABBREVIATIONS", "Lemmatizer", "get_lemmatizer", "load_morph_analyzer"]

ABBREVIATIONS: dict[str, str] = {
    "д": "дом",
    "кв": "квартира",
    "корп": "корпус",
    "лит": "литера",
    "литер": "литера",
    "стр": "строение",
    "эт": "этаж",
    "пом": "помещение",
    "ул": "улица",
    "пр": "проспект",
    "просп": "проспект",
    "пер": "переулок",
    "наб": "набережная",
    "пл": "площадь",
    "ш": "шоссе",
    "бул": "бульвар",
    "мкр": "микрорайон",
    "тел": "телефон",
}
"""Surface form (without the dot) -> lemma, applied before morphology."""


def load_morph_analyzer() -> MorphAnalyzer:
    """Build a pymorphy3 analyzer (~20 MB of dictionaries); call once and share it."""
    try:
        from pymorphy3 import MorphAnalyzer
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError("pymorphy3 is needed: pip install pymorphy3 pymorphy3-dicts-ru") from exc
    return MorphAnalyzer()


class Lemmatizer:
    """Word -> lemma with a dict cache; the analyzer is built on first use if not given.

    Parameters
    ----------
    morph
        A shared ``pymorphy3.MorphAnalyzer``; ``None`` builds one lazily.
    max_cache_size
        The cache is emptied when it grows past this many words (long-running services).
    """

    def __init__(self, morph: MorphAnalyzer | None = None, max_cache_size: int = 500_000) -> None:
        self._morph = morph
        self._fast: Any = None
        self.max_cache_size = max_cache_size
        self._cache: dict[str, str] = {}

    @property
    def morph(self) -> MorphAnalyzer:
        if self._morph is None:
            self._morph = load_morph_analyzer()
        return self._morph

    def _unranked(self) -> Any:
        """The same analyzer without the P(tag|word) ranking (shares its dictionaries).

        Ranking costs a third of a parse and only matters when the parses disagree
        on the normal form, so it is applied only then.
        """
        if self._fast is None:
            morph = self.morph
            fast = object.__new__(type(morph))
            fast.__dict__.update(morph.__dict__)
            fast.prob_estimator = None
            self._fast = fast
        return self._fast

    def _best_normal_form(self, word: str) -> str:
        try:
            parses = self._unranked().parse(word)
        except ValueError:
            # pymorphy3 asks unicodedata.name() of every letter; unnamed ones (Tangut, new
            # code points) raise. Such a word has no Russian lemma: keep it as it is.
            return word
        if not parses:
            return word
        first = parses[0][2]
        if any(p[2] != first for p in parses):
            estimator = self.morph.prob_estimator
            if estimator is not None:
                first = estimator.apply_to_parses(word, word, parses)[0][2]
        return first

    def __call__(self, word: str) -> str:
        """Lemma of one lowercase, ``ё``-free word."""
        lemma = self._cache.get(word)
        if lemma is None:
            lemma = ABBREVIATIONS.get(word)
            if lemma is None:
                if len(word) == 1 or word.isascii():
                    lemma = word
                else:
                    lemma = self._best_normal_form(word).replace("ё", "е")
            if len(self._cache) >= self.max_cache_size:
                self._cache.clear()
            self._cache[word] = lemma
        return lemma


@functools.cache
def get_lemmatizer() -> Lemmatizer:
    """The process-wide lemmatizer (one analyzer, one cache)."""
    return Lemmatizer()
