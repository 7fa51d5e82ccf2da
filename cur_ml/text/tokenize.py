"""spaCy's Russian tokenizer, set up for normalised (lowercased, placeholder) text.

Changes to ``spacy.blank("ru").tokenizer``, each measured on 48,827 appeals:

* the per-chunk cache holds 500,000 chunks instead of 10,000 (the normalised corpus
  has ~55,000 distinct whitespace chunks, so the stock cache stops filling early);
* no special-case table: with it, every call ends in a PhraseMatcher pass over all
  tokens (~90% of the warm tokenizer's time). The abbreviations it kept whole ("ул.",
  "д.") come out as "ул" + "." and are expanded by
  :data:`cur_ml.text.lemmatize.ABBREVIATIONS` instead;
* no URL matcher: URLs are already placeholders, and on lowercased text it took
  "ул.марата" or "уборка.требуется" for one web address;
* its private vocabulary computes no lexical attributes (shape, like_num, norm...)
  for new words: only ORTH, IDX and LENGTH are read, and the getters cost ~30 us per
  new word, a third of the tokenizer's first pass;
* a period between two letters splits ("ул.марата"), as the stock rule does for
  "ул.Марата" before lowercasing; placeholders ``_url_``... stay whole.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from cur_ml.text.normalize import PLACEHOLDERS

if TYPE_CHECKING:
    from spacy.tokenizer import Tokenizer

__all__ = ["Token", "build_tokenizer"]

_PERIOD_BETWEEN_LETTERS = r"(?<=[^\W\d_])\.(?=[^\W\d_])"
_PLACEHOLDER = re.compile("|".join(sorted(PLACEHOLDERS)) + r"\Z")


class Token(NamedTuple):
    """One kept word: its lemma and its span ``text[start:end]`` in the original text."""

    lemma: str
    start: int
    end: int


def build_tokenizer(max_cache_size: int = 500_000) -> Tokenizer:
    """A new Russian tokenizer (with its own vocabulary); build once and reuse."""
    try:
        import spacy
        from spacy.util import compile_infix_regex
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError("spaCy is needed: pip install 'spacy>=3.7'") from exc
    nlp = spacy.blank("ru")
    tokenizer = nlp.tokenizer
    tokenizer.rules = {}
    infixes = [*nlp.Defaults.infixes, _PERIOD_BETWEEN_LETTERS]
    tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
    tokenizer.token_match = _PLACEHOLDER.match
    tokenizer.url_match = None
    tokenizer.max_cache_size = max_cache_size
    tokenizer.vocab.lex_attr_getters = {}
    return tokenizer
