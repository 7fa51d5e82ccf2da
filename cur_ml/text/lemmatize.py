"""Cached pymorphy3 lemmatisation of single lowercase words.

The lemma is the normal form of pymorphy3's best parse, with ``ё`` written ``е``.
Address abbreviations ("д", "кв", "ул"...) are expanded first, Latin words and single
letters are kept as they are (pymorphy3 would read "е" as "быть", "т" as "так").

Online texts stretch letters ("лиииифт"), run words together ("работаетлифт") and
carry typos ("ндеелю"). A word the dictionary lacks is repaired into dictionary words
first, when one repair gives them; the lemma of two run-together words is two lemmas.
"""

from __future__ import annotations

import functools
import re
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


_STRETCHED = re.compile(r"(.)\1{2,}")
_RUSSIAN = re.compile(r"[а-я]+")
_ALPHABET = "абвгдежзийклмнопрстуфхцчшщъыьэюя"
#: Short words that run into their neighbours ("вподъезде", "неработает", "покрышекдля");
#: of the parts of a run-together word only these may be shorter than `_MIN_PART`.
_SHORT_WORDS = frozenset(
    "в во на не ни для с со и а но по за из от до к ко у о об же ли бы при без над под".split()
)
_MIN_PART = 4
_NEGATIONS = frozenset(("не", "ни"))
_MIN_TYPO_LENGTH = 5
_MAX_REPAIR_LENGTH = 30


def _edits(word: str) -> list[str]:
    """Words one edit away, likeliest kinds first: swapped, dropped, wrong, missing letter."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    swapped = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1 and b[0] != b[1]]
    dropped = [a + b[1:] for a, b in splits if b]
    wrong = [a + c + b[1:] for a, b in splits if b for c in _ALPHABET if c != b[0]]
    missing = [a + c + b for a, b in splits for c in _ALPHABET]
    return swapped + dropped + wrong + missing


def _part_ok(part: str) -> bool:
    return len(part) >= _MIN_PART or part in _SHORT_WORDS


def _split_rank(parts: list[str]) -> tuple[int, int]:
    return (-len(parts), min(len(p) for p in parts))


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

    def _known(self, word: str) -> bool:
        # Not strict: the texts write "е" for "ё", the dictionary does not.
        return self.morph.word_is_known(word)

    def repair(self, word: str) -> list[str] | None:
        """Dictionary words an unknown Russian word stands for, or None when none is sure."""
        if not 4 <= len(word) <= _MAX_REPAIR_LENGTH or not _RUSSIAN.fullmatch(word):
            return None
        if self._known(word):
            return None
        if _STRETCHED.search(word):
            for squeezed in (_STRETCHED.sub(r"\1", word), _STRETCHED.sub(r"\1\1", word)):
                if self._known(squeezed):
                    return [squeezed]
        parts = self._split(word, depth=3)
        if parts:
            # Prepositions and the like carry nothing; negation is kept, as everywhere.
            return [p for p in parts if p in _NEGATIONS or p not in _SHORT_WORDS] or None
        if len(word) >= _MIN_TYPO_LENGTH:
            words = self.morph.dictionary.words  # strict lookups: 6x faster, enough for typos
            for candidate in _edits(word):
                if candidate in words:
                    return [candidate]
        return None

    def _split(self, word: str, depth: int) -> list[str] | None:
        """Words run together (up to `depth` of them): the split with the fewest, most
        balanced dictionary words, or None."""
        best: list[str] | None = None
        for i in range(1, len(word)):
            head, tail = word[:i], word[i:]
            if not _part_ok(head) or not self._known(head):
                continue
            if _part_ok(tail) and self._known(tail):
                rest: list[str] | None = [tail]
            else:
                rest = self._split(tail, depth - 1) if depth > 2 else None
            if rest is not None:
                candidate = [head, *rest]
                if best is None or _split_rank(candidate) > _split_rank(best):
                    best = candidate
        return best

    def _lemma(self, word: str) -> str:
        if len(word) == 1 or word.isascii():
            return word
        return self._best_normal_form(word).replace("ё", "е")

    def cheap(self, word: str) -> str | None:
        """The lemma when it costs a cache or dictionary lookup; None for a Russian-looking
        word the dictionary lacks, whose repair and prediction cost ~50x more."""
        lemma = self._cache.get(word)
        if lemma is not None:
            return lemma
        if word in ABBREVIATIONS or len(word) == 1 or word.isascii() or self._known(word):
            return self(word)
        return None

    def __call__(self, word: str) -> str:
        """Lemma of one lowercase, ``ё``-free word (two lemmas for two run-together words)."""
        lemma = self._cache.get(word)
        if lemma is None:
            lemma = ABBREVIATIONS.get(word)
            if lemma is None:
                parts = self.repair(word)
                lemma = " ".join(map(self._lemma, parts)) if parts else self._lemma(word)
            if len(self._cache) >= self.max_cache_size:
                self._cache.clear()
            self._cache[word] = lemma
        return lemma


@functools.cache
def get_lemmatizer() -> Lemmatizer:
    """The process-wide lemmatizer (one analyzer, one cache)."""
    return Lemmatizer()
