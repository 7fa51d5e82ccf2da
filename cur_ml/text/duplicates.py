"""Near-identical appeals: the same text once case, «ё», punctuation and spacing are set aside,
or lemma sets whose Jaccard similarity reaches a threshold (residents of one house writing
about the same broken lift in their own words).

Lemmas come from the package's own preprocessor (pymorphy3, stop-words dropped), so «не
работает лифт» and «Лифт не работает!!» share every lemma; each text's set is cached.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from cur_ml.text.preprocessor import RussianPreprocessor

__all__ = ["Match", "jaccard", "lemma_sets", "near_duplicates", "normalised"]

_WORD = re.compile(r"\w+")
_CACHE = 20_000


def normalised(text: str) -> str:
    """The words of `text`, case-folded with «ё» as «е», joined by single spaces."""
    return " ".join(_WORD.findall(text.casefold().replace("ё", "е")))


@lru_cache(maxsize=1)
def _preprocessor() -> RussianPreprocessor:
    return RussianPreprocessor().fit([])


_cache: dict[str, frozenset[str]] = {}
_lock = threading.Lock()


def lemma_sets(texts: Sequence[str]) -> list[frozenset[str]]:
    """The set of lemmas of each text; texts not seen before are lemmatised in one batch."""
    with _lock:
        known = {t: _cache[t] for t in texts if t in _cache}
    fresh = [t for t in dict.fromkeys(texts) if t not in known]
    if fresh:
        lemmas = [frozenset(s.split()) for s in _preprocessor().transform(fresh)]
        known.update(zip(fresh, lemmas, strict=True))
        with _lock:
            if len(_cache) + len(fresh) > _CACHE:
                _cache.clear()
            _cache.update(zip(fresh, lemmas, strict=True))
    return [known[t] for t in texts]


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 0 when both are empty (nothing to compare is not a match)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


@dataclass(frozen=True)
class Match:
    """A candidate close enough to the lead appeal."""

    key: str
    similarity: float
    #: The same normalised text (a copy, give or take punctuation and case).
    same_text: bool


def near_duplicates(lead: str, candidates: Mapping[str, str], threshold: float) -> list[Match]:
    """Candidates (key → text) near-identical to `lead`, the most similar first."""
    if not candidates:
        return []
    key = normalised(lead)
    keys = list(candidates)
    texts = [candidates[k] for k in keys]
    lead_set, *sets = lemma_sets([lead, *texts])
    out = []
    for k, text, lemmas in zip(keys, texts, sets, strict=True):
        same = bool(key) and normalised(text) == key
        score = 1.0 if same else jaccard(lead_set, lemmas)
        if same or score >= threshold:
            out.append(Match(k, score, same))
    return sorted(out, key=lambda m: (-m.similarity, m.key))
