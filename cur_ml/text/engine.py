"""The batch path: normalise, tokenise and lemmatise many texts in one spaCy call.

Texts are joined with a blank line, normalised and tokenised as one string, and the
tokens are read back as a numpy array (ORTH hash, offset, length) - no Python loop
over spaCy ``Token`` objects. Lemmas are looked up by ORTH hash in a dict, so a word
seen before costs one dict lookup; a new one goes through the lemmatizer once.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from cur_ml.text.lemmatize import Lemmatizer, get_lemmatizer
from cur_ml.text.normalize import PLACEHOLDERS, normalize
from cur_ml.text.stopwords import STOPWORDS
from cur_ml.text.tokenize import Token, build_tokenizer

if TYPE_CHECKING:
    from spacy.tokenizer import Tokenizer

__all__ = ["Batch", "Engine", "TokenStream", "get_engine"]

SEPARATOR = "\n\n"
#: Words the dictionary lacks, analysed in full per batch: this many, plus one per
#: `UNKNOWN_WORDS_PER` tokens. The rest are kept as written (see `Engine._lemma_of`).
UNKNOWN_WORDS_BASE = 16
UNKNOWN_WORDS_PER = 8


@dataclass(frozen=True)
class TokenStream:
    """The kept tokens of many texts, flat: text ``i`` owns ``indptr[i]:indptr[i + 1]``.

    ``starts``/``ends`` are offsets into each original text; ``normalized[i]`` is
    text ``i`` normalised (same length), which placeholders are widened against.
    """

    lemmas: list[str]
    starts: np.ndarray
    ends: np.ndarray
    indptr: np.ndarray
    normalized: list[str]

    @staticmethod
    def concat(parts: Sequence[TokenStream]) -> TokenStream:
        if len(parts) == 1:
            return parts[0]
        shifts = np.cumsum([0] + [p.indptr[-1] for p in parts[:-1]])
        return TokenStream(
            [lemma for p in parts for lemma in p.lemmas],
            np.concatenate([p.starts for p in parts]),
            np.concatenate([p.ends for p in parts]),
            np.concatenate([[0]] + [p.indptr[1:] + s for p, s in zip(parts, shifts, strict=True)]),
            [n for p in parts for n in p.normalized],
        )

    def strings(self) -> list[str]:
        """Space-joined lemmas of each text."""
        lemmas, bounds = self.lemmas, self.indptr.tolist()
        return [" ".join(lemmas[bounds[i] : bounds[i + 1]]) for i in range(len(bounds) - 1)]

    def token(self, j: int, text: str, i: int) -> Token:
        """Token ``j`` (of text ``i``, whose original is `text`), placeholders widened."""
        token = Token(self.lemmas[j], int(self.starts[j]), int(self.ends[j]))
        return _widen(token, text, self.normalized[i]) if token.lemma in PLACEHOLDERS else token

    def tokens(self, texts: Sequence[str]) -> list[list[Token]]:
        """Kept tokens of each text as `Token`s."""
        bounds = self.indptr.tolist()
        return [
            [self.token(j, text, i) for j in range(bounds[i], bounds[i + 1])]
            for i, text in enumerate(texts)
        ]


class Batch(NamedTuple):
    """Tokens of a batch: ``lemmas[bounds[i]:bounds[i + 1]]`` belong to text ``i``.

    ``lemmas`` holds ``""`` for dropped tokens (punctuation, spaces, stop-words).
    ``starts`` and ``ends`` are offsets into ``normalized`` (the normalised joined
    string); ``offsets[i]`` is where text ``i`` begins in it.
    """

    normalized: str
    lemmas: list[str]
    starts: np.ndarray
    ends: np.ndarray
    bounds: list[int]
    offsets: list[int]

    def strings(self) -> list[str]:
        """Space-joined kept lemmas of each text."""
        lemmas, bounds = self.lemmas, self.bounds
        return [
            " ".join(filter(None, lemmas[bounds[i] : bounds[i + 1]]))
            for i in range(len(bounds) - 1)
        ]

    def stream(self, texts: Sequence[str]) -> TokenStream:
        """The kept tokens, flat, with offsets relative to each text (no Python per token)."""
        n = len(texts)
        keep = np.fromiter(map(bool, self.lemmas), dtype=bool, count=len(self.lemmas))
        doc = np.repeat(np.arange(n), np.diff(self.bounds))[keep]
        base = np.asarray(self.offsets, dtype=np.int64)[doc]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(doc, minlength=n))])
        norm = self.normalized
        normalized = [norm[o : o + len(t)] for o, t in zip(self.offsets, texts, strict=True)]
        return TokenStream(
            list(compress(self.lemmas, keep)),
            self.starts[keep] - base,
            self.ends[keep] - base,
            indptr,
            normalized,
        )

    def tokens(self, texts: Sequence[str]) -> list[list[Token]]:
        """Kept tokens of each text, offsets relative to that text."""
        out: list[list[Token]] = []
        lemmas, bounds = self.lemmas, self.bounds
        starts, ends = self.starts.tolist(), self.ends.tolist()
        for i, text in enumerate(texts):
            base = self.offsets[i]
            norm = self.normalized[base : base + len(text)]
            toks = [
                Token(lemmas[j], starts[j] - base, ends[j] - base)
                for j in range(bounds[i], bounds[i + 1])
                if lemmas[j]
            ]
            out.append([_widen(t, text, norm) if t.lemma in PLACEHOLDERS else t for t in toks])
        return out


def _widen(token: Token, text: str, norm: str) -> Token:
    """Stretch a placeholder token over the whole URL/e-mail/phone it replaced."""
    start, end = token.start, token.end
    while start > 0 and norm[start - 1] == " " and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and norm[end] == " " and not text[end].isspace():
        end += 1
    return Token(token.lemma, start, end)


class Engine:
    """Tokenizer + lemmatizer + lemma caches keyed by spaCy ORTH hashes.

    Parameters
    ----------
    lemmatizer
        Shared word lemmatizer; the process-wide one if ``None``.
    max_vocab
        The tokenizer (its vocabulary keeps every string it has seen) is rebuilt, and
        the lemma caches emptied, once they grow past this many entries - a bound on
        the memory of a long-running service.
    """

    def __init__(self, lemmatizer: Lemmatizer | None = None, max_vocab: int = 1_000_000) -> None:
        self.lemmatizer = lemmatizer if lemmatizer is not None else get_lemmatizer()
        self.max_vocab = max_vocab
        self._tokenizer: Tokenizer | None = None
        # drop_stopwords -> {ORTH hash: lemma, "" for tokens that are not kept}
        self._by_orth: dict[bool, dict[int, str]] = {True: {}, False: {}}
        self._lock = threading.Lock()  # one batch at a time: caches and tokenizer are shared

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = build_tokenizer()
        return self._tokenizer

    def _lemma_of(self, surface: str, drop_stopwords: bool, costly_ok: bool) -> tuple[str, bool]:
        """(lemma, costly): `costly` when the word needed repair or prediction. A word that
        would need them when `costly_ok` is False is kept as written (its lemma is left
        for a later batch: not cached)."""
        if surface in PLACEHOLDERS:
            return surface, False
        if not surface.isalpha():
            return "", False
        lemma = self.lemmatizer.cheap(surface)
        costly = lemma is None
        if lemma is None:
            lemma = self.lemmatizer(surface) if costly_ok else surface
        return ("" if drop_stopwords and lemma in STOPWORDS else lemma), costly

    def run(self, texts: Sequence[str], drop_stopwords: bool = True) -> Batch:
        """Process a batch of already-truncated ``str`` texts."""
        with self._lock:
            return self._run(texts, drop_stopwords)

    def _run(self, texts: Sequence[str], drop_stopwords: bool) -> Batch:
        from spacy.attrs import IDX, LENGTH, ORTH

        offsets, pos = [], 0
        for text in texts:
            offsets.append(pos)
            pos += len(text) + len(SEPARATOR)
        norm = normalize(SEPARATOR.join(texts))
        tokenizer = self.tokenizer
        arr = tokenizer(norm).to_array([ORTH, IDX, LENGTH]).reshape(-1, 3)
        starts = arr[:, 1].astype(np.int64)
        lengths = arr[:, 2].astype(np.int64)
        ends = starts + lengths
        orths = arr[:, 0].tolist()

        cache = self._by_orth[drop_stopwords]
        lemmas = list(map(cache.get, orths))
        if None in lemmas:
            begin, length = starts.tolist(), lengths.tolist()
            # Unknown words get the costly analysis up to a budget that grows with the batch:
            # real text has a few such words, a text of random letters has nothing else.
            budget = UNKNOWN_WORDS_BASE + len(orths) // UNKNOWN_WORDS_PER
            i = lemmas.index(None)
            while True:
                lemma = cache.get(orths[i])
                if lemma is None:
                    surface = norm[begin[i] : begin[i] + length[i]]
                    analysed = budget > 0
                    lemma, costly = self._lemma_of(surface, drop_stopwords, analysed)
                    budget -= costly
                    if analysed or not costly:  # a word kept as written is not its lemma
                        cache[orths[i]] = lemma
                lemmas[i] = lemma
                try:
                    i = lemmas.index(None, i + 1)
                except ValueError:
                    break
            if len(cache) > self.max_vocab:
                cache.clear()
        if len(tokenizer.vocab) > self.max_vocab:
            self._tokenizer = None
        bounds = np.searchsorted(starts, offsets).tolist()
        bounds.append(len(lemmas))
        return Batch(norm, lemmas, starts, ends, bounds, offsets)


@functools.cache
def get_engine() -> Engine:
    """The process-wide engine, built on first use (never at import)."""
    return Engine()
