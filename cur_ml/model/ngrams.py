"""Fitted n-gram vocabularies compiled to arrays: a batch is vectorised with numpy.

scikit-learn's vectorisers build every n-gram of every document as a Python
string and look it up in a dict; at serving time that was most of the cost of a
prediction. Here a batch costs one dict lookup per lemma (its id) and one
codepoint array for all characters, and every n-gram becomes an integer key
found with `np.searchsorted`. The counts and the tf-idf weighting are exactly
those of the fitted `TfidfVectorizer` (same kernels, same order), so the
features - and the model's decisions - are identical to scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

__all__ = [
    "CharNgrams",
    "LemmaIds",
    "LemmaVocabulary",
    "TokenVocabulary",
    "hstack",
    "take_rows",
    "tfidf",
]


#: Below this many entries a matrix is assembled with numpy; above, scipy's COO path is
#: quicker (its per-row sort beats one big sort), and its fixed cost no longer matters.
_SMALL = 20_000


def _csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Counts of (row, col) pairs as a canonical float32 CSR matrix (sorted, summed)."""
    if len(rows) > _SMALL:
        data = np.ones(len(rows), dtype=np.float32)
        X = sp.csr_matrix((data, (rows, cols)), shape=shape, dtype=np.float32)
        X.sum_duplicates()
        return X
    if shape[0] == 1:  # one appeal: the columns alone
        indices, counts = np.unique(cols, return_counts=True)
        indptr = np.array([0, len(indices)], dtype=np.int32)
        return sp.csr_matrix(
            (counts.astype(np.float32), indices.astype(np.int32), indptr), shape=shape
        )
    keys = np.sort(rows.astype(np.int64) * shape[1] + cols)
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(first)
    unique = keys[starts]
    counts = np.diff(np.append(starts, len(keys))).astype(np.float32)
    indptr = np.searchsorted(unique // shape[1], np.arange(shape[0] + 1)).astype(np.int32)
    indices = (unique % shape[1]).astype(np.int32)
    return sp.csr_matrix((counts, indices, indptr), shape=shape)


def hstack(blocks: Sequence[sp.csr_matrix]) -> sp.csr_matrix:
    """``sp.hstack(blocks, format="csr")`` of canonical CSR blocks, without its fixed cost."""
    n = blocks[0].shape[0]
    offsets = np.cumsum([0] + [b.shape[1] for b in blocks])
    if n == 1:  # one appeal: its blocks one after the other
        data = np.concatenate([b.data for b in blocks])
        indices = np.concatenate([b.indices + o for b, o in zip(blocks, offsets, strict=False)])
        indptr = np.array([0, len(data)], dtype=np.int32)
        return sp.csr_matrix((data, indices.astype(np.int32), indptr), shape=(1, offsets[-1]))
    lengths = np.stack([np.diff(b.indptr) for b in blocks])  # blocks × rows
    indptr = np.concatenate([[0], np.cumsum(lengths.sum(axis=0))])
    before = np.cumsum(lengths, axis=0) - lengths  # entries of earlier blocks in each row
    data = np.empty(indptr[-1], dtype=np.result_type(*(b.dtype for b in blocks)))
    indices = np.empty(indptr[-1], dtype=np.int64)
    offset = 0
    for b, ahead in zip(blocks, before, strict=True):
        row = np.repeat(np.arange(n), np.diff(b.indptr))
        position = indptr[:-1][row] + ahead[row] + (np.arange(b.nnz) - b.indptr[:-1][row])
        data[position], indices[position] = b.data, b.indices + offset
        offset += b.shape[1]
    index_type = np.int32 if offset < 2**31 and len(data) < 2**31 else np.int64
    return sp.csr_matrix(
        (data, indices.astype(index_type), indptr.astype(index_type)), shape=(n, offset)
    )


def take_rows(X: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``X[rows]`` of a CSR matrix, without scipy's fixed cost of fancy indexing."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == X.shape[0] and (rows == np.arange(len(rows))).all():
        return X
    lengths = np.diff(X.indptr)[rows]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    gather = np.repeat(X.indptr[rows] - indptr[:-1], lengths) + np.arange(indptr[-1])
    return sp.csr_matrix(
        (X.data[gather], X.indices[gather], indptr.astype(X.indptr.dtype)),
        shape=(len(rows), X.shape[1]),
    )


def tfidf(counts: sp.csr_matrix, vectorizer: TfidfVectorizer) -> sp.csr_matrix:
    """`TfidfTransformer.transform` of the vectoriser, in place, without input checks
    (the same numpy operations and normalisation kernel, so the same floats)."""
    params = vectorizer
    if params.sublinear_tf:
        np.log(counts.data, counts.data)
        counts.data += 1.0
    if params.use_idf:
        counts.data *= vectorizer.idf_[counts.indices]
    if params.norm == "l2":
        inplace_csr_row_normalize_l2(counts)
    elif params.norm is not None:  # not used by our vectorisers; refuse rather than differ
        raise ValueError(f"norm={params.norm!r} is not compiled")
    return counts


def _lookup(keys: np.ndarray, table: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Feature of each key in the sorted `table` (-1 where absent)."""
    if not len(table):
        return np.full(len(keys), -1, dtype=np.int64)
    at = np.searchsorted(table, keys).clip(max=len(table) - 1)
    return np.where(table[at] == keys, features[at], -1)


@dataclass(frozen=True)
class LemmaIds:
    """The lemmas of a batch as token ids: text i is ``ids[indptr[i]:indptr[i + 1]]``
    (-1 for a lemma no vocabulary uses)."""

    ids: np.ndarray
    indptr: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def doc(self) -> np.ndarray:
        """The text each token belongs to."""
        return np.repeat(np.arange(len(self)), np.diff(self.indptr))

    def take(self, rows: Sequence[int] | np.ndarray) -> LemmaIds:
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.diff(self.indptr)[rows]
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        gather = np.repeat(self.indptr[rows] - indptr[:-1], lengths) + np.arange(indptr[-1])
        return LemmaIds(self.ids[gather], indptr)


class LemmaVocabulary:
    """The word n-grams (1-2) of the text block and the object × lemma crosses, compiled.

    Every lemma that any of their features uses gets an id; a bigram is the key
    ``a * n + b``, a cross ``object * n + lemma``.
    """

    def __init__(self, words: TfidfVectorizer, crosses: TfidfVectorizer, objects: Iterable[str]):
        if words.ngram_range[0] != 1 or words.ngram_range[1] > 2:
            raise ValueError(f"ngram_range={words.ngram_range} is not compiled")
        self.words, self.crosses_ = words, crosses
        self.object_index = {o: i for i, o in enumerate(objects)}
        ids: dict[str, int] = {}
        unigrams, bigrams = [], []
        for gram, feature in words.vocabulary_.items():
            parts = gram.split(" ")
            for p in parts:
                ids.setdefault(p, len(ids))
            (unigrams if len(parts) == 1 else bigrams).append((parts, feature))
        cross = []
        for gram, feature in crosses.vocabulary_.items():
            obj, _, lemma = gram.partition("|")
            if obj in self.object_index:
                cross.append((self.object_index[obj], ids.setdefault(lemma, len(ids)), feature))
        self.ids, n = ids, len(ids)
        self.unigram = np.full(n, -1, dtype=np.int64)
        for (w,), feature in unigrams:
            self.unigram[ids[w]] = feature
        self.bigram_keys, self.bigram_features = _sorted(
            [ids[a] * n + ids[b] for (a, b), _ in bigrams], [f for _, f in bigrams]
        )
        self.cross_keys, self.cross_ids = _sorted(
            [o * n + w for o, w, _ in cross], [f for *_, f in cross]
        )

    def encode(self, lemmas: Sequence[str]) -> LemmaIds:
        """Token ids of space-joined lemma strings (one dict lookup per lemma)."""
        split = [s.split() for s in lemmas]
        lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        flat = list(map(self.ids.get, chain.from_iterable(split), repeat(-1)))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return LemmaIds(np.array(flat, dtype=np.int64), indptr)

    def encode_tokens(self, lemmas: list[str], indptr: np.ndarray) -> LemmaIds:
        """Token ids of a flat list of lemmas (text i owns ``indptr[i]:indptr[i + 1]``); a
        lemma of two words (run-together words, repaired) counts as its two words."""
        indptr = np.asarray(indptr, dtype=np.int64)
        words = " ".join(lemmas).split(" ") if lemmas else []
        if len(words) != len(lemmas):
            # Which lemma each word comes from: by where it ends in the joined string.
            lemma_end = np.cumsum(np.fromiter(map(len, lemmas), np.int64, len(lemmas)) + 1)
            word_end = np.cumsum(np.fromiter(map(len, words), np.int64, len(words)) + 1)
            owner = np.searchsorted(lemma_end, word_end)
            indptr = np.searchsorted(owner, indptr)
            lemmas = words
        ids = list(map(self.ids.get, lemmas, repeat(-1)))
        return LemmaIds(np.array(ids, dtype=np.int64), indptr)

    def unigrams(self, ids: np.ndarray) -> np.ndarray:
        """The unigram feature of each token (-1: none)."""
        known = ids >= 0
        return np.where(known, self.unigram[np.where(known, ids, 0)], -1)

    def bigrams(self, ids: np.ndarray, doc: np.ndarray) -> np.ndarray:
        """The bigram feature of each token and the next one of its text (-1: none);
        one shorter than `ids`."""
        pair = (doc[:-1] == doc[1:]) & (ids[:-1] >= 0) & (ids[1:] >= 0)
        out = np.full(len(pair), -1, dtype=np.int64)
        if pair.any():
            keys = ids[:-1][pair] * len(self.ids) + ids[1:][pair]
            out[pair] = _lookup(keys, self.bigram_keys, self.bigram_features)
        return out

    def crosses(self, ids: np.ndarray, doc: np.ndarray, objects: Sequence[str]) -> np.ndarray:
        """The object × lemma feature of each token, crossed with its text's object slug."""
        obj = np.array([self.object_index.get(o, -1) for o in objects], dtype=np.int64)[doc]
        ok = (obj >= 0) & (ids >= 0)
        out = np.full(len(ids), -1, dtype=np.int64)
        out[ok] = _lookup(obj[ok] * len(self.ids) + ids[ok], self.cross_keys, self.cross_ids)
        return out

    def word_counts(self, lemmas: LemmaIds) -> sp.csr_matrix:
        doc = lemmas.doc
        uni, bi = self.unigrams(lemmas.ids), self.bigrams(lemmas.ids, doc)
        rows = np.concatenate([doc[uni >= 0], doc[:-1][bi >= 0]])
        cols = np.concatenate([uni[uni >= 0], bi[bi >= 0]])
        return _csr(rows, cols, (len(lemmas), len(self.words.vocabulary_)))

    def word_features(self, lemmas: LemmaIds) -> sp.csr_matrix:
        """What ``words.transform`` gives for these lemma strings."""
        return tfidf(self.word_counts(lemmas), self.words)

    def cross_features(self, lemmas: LemmaIds, objects: Sequence[str]) -> sp.csr_matrix:
        """What ``crosses.transform`` gives when every lemma of text i is crossed with
        ``objects[i]`` (an object slug; empty or unknown crosses nothing)."""
        doc = lemmas.doc
        feature = self.crosses(lemmas.ids, doc, objects)
        hit = feature >= 0
        counts = _csr(doc[hit], feature[hit], (len(lemmas), len(self.crosses_.vocabulary_)))
        return tfidf(counts, self.crosses_)


def _sorted(keys: list[int], features: list[int]) -> tuple[np.ndarray, np.ndarray]:
    keys_arr = np.array(keys, dtype=np.int64)
    order = np.argsort(keys_arr, kind="stable")
    return keys_arr[order], np.array(features, dtype=np.int64)[order]


class CharNgrams:
    """A fitted ``analyzer="char_wb"`` vectoriser of fixed n (4), compiled.

    ``char_wb`` pads each whitespace-separated word with one space on each side
    and takes its n-grams; a padded word shorter than n is one n-gram. Characters
    become small codes (0 for a character no n-gram has) and an n-gram the integer
    of its codes in base `radix`; a short one is padded with a code of its own.
    """

    def __init__(self, vectorizer: TfidfVectorizer):
        low, high = vectorizer.ngram_range
        if vectorizer.analyzer != "char_wb" or low != high:
            raise ValueError("only char_wb n-grams of one length are compiled")
        self.vectorizer, self.n = vectorizer, low
        alphabet = sorted({c for gram in vectorizer.vocabulary_ for c in gram} | {" "})
        self.codepoints = np.array([ord(c) for c in alphabet], dtype=np.uint32)
        self.pad = len(alphabet) + 1  # codes 1..len(alphabet); 0 unknown
        self.radix = len(alphabet) + 2
        code = {c: i + 1 for i, c in enumerate(alphabet)}
        keys = [self._key_of(g, code) for g in vectorizer.vocabulary_]
        self.keys, self.features = _sorted(keys, list(vectorizer.vocabulary_.values()))
        self.space = code[" "]

    def _key_of(self, gram: str, code: dict[str, int]) -> int:
        key = 0
        for c in [code[c] for c in gram] + [self.pad] * (self.n - len(gram)):
            key = key * self.radix + c
        return key

    def _codes(self, text: str) -> np.ndarray:
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        at = np.searchsorted(self.codepoints, points).clip(max=len(self.codepoints) - 1)
        return np.where(self.codepoints[at] == points, at + 1, 0).astype(np.int64)

    def counts(self, texts: Sequence[str]) -> sp.csr_matrix:
        prep = self.vectorizer.build_preprocessor()
        docs = [" ".join(prep(t).split()) for t in texts]
        # Each text framed by spaces: a word is a run of non-spaces, and its padding
        # spaces are the characters on either side.
        joined = "".join(f" {d} " for d in docs)
        starts = np.cumsum([0] + [len(d) + 2 for d in docs])
        codes = self._codes(joined)
        is_space = codes == self.space
        edges = np.diff(np.concatenate([[0], (~is_space).astype(np.int8), [0]]))
        word_start = np.flatnonzero(edges == 1)  # first character of a word
        word_end = np.flatnonzero(edges == -1)  # one past its last
        padded = word_end - word_start + 2
        n = self.n
        grams = np.maximum(padded - n + 1, 1)
        first = np.repeat(word_start - 1, grams)
        offset = np.arange(grams.sum()) - np.repeat(np.cumsum(grams) - grams, grams)
        begin = first + offset
        length = np.minimum(np.repeat(padded, grams), n)
        key = np.zeros(len(begin), dtype=np.int64)
        unknown = np.zeros(len(begin), dtype=bool)
        padded_codes = np.concatenate([codes, np.zeros(n, dtype=np.int64)])
        for j in range(n):
            c = np.where(j < length, padded_codes[begin + j], self.pad)
            unknown |= c == 0
            key = key * self.radix + c
        feature = _lookup(key, self.keys, self.features)
        feature[unknown] = -1
        doc = np.searchsorted(starts, begin, side="right") - 1
        hit = feature >= 0
        return _csr(doc[hit], feature[hit], (len(docs), len(self.vectorizer.vocabulary_)))

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """What ``vectorizer.transform(texts)`` gives."""
        return tfidf(self.counts(texts), self.vectorizer)


class TokenVocabulary:
    """A fitted ``CountVectorizer`` over whitespace tokens, for token lists."""

    def __init__(self, vectorizer: CountVectorizer):
        self.vectorizer = vectorizer
        self.vocabulary = vectorizer.vocabulary_

    def transform(self, docs: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """What ``vectorizer.transform([" ".join(d) for d in docs])`` gives."""
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        feature = np.array(
            list(map(self.vocabulary.get, chain.from_iterable(docs), repeat(-1))), dtype=np.int64
        )
        doc = np.repeat(np.arange(len(docs)), lengths)
        hit = feature >= 0
        X = _csr(doc[hit], feature[hit], (len(docs), len(self.vocabulary)))
        if self.vectorizer.binary:
            X.data.fill(1)
        return X
