"""The compiled vocabularies give exactly what scikit-learn's vectorisers give."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from cur_ml.model.bundle import load_model
from cur_ml.model.features import _crosses, slug
from cur_ml.model.ngrams import _SMALL, _csr, hstack, take_rows

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
ODD_TEXTS = [
    "",
    "а",
    "ab",
    "ёж Ёлка  \u00a0 x\tтаб\nстрока",
    "😀 эмодзи ☺ 漢字 Ω",
    "a b c d e f",
    "Нет гоячей воды!!! ул.Марата,д.5 кв 7 https://vk.com/x",
]


def _identical(a: sp.spmatrix, b: sp.spmatrix) -> None:
    a, b = sp.csr_matrix(a), sp.csr_matrix(b)
    a.sort_indices(), b.sort_indices()
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)  # bit for bit, not approximately


@pytest.fixture(scope="module")
def featurizer_and_texts(golden_model_dir):
    model = load_model(golden_model_dir)
    appeals = json.loads((GOLDEN / "appeals.json").read_text())
    texts = [a["text"] for a in appeals] + ODD_TEXTS
    objects = [a.get("city_object", "") for a in appeals] + ["", "Дом", "Двор", "Нечто", "", "", ""]
    return model.classifier.featurizer_, texts, objects


def test_word_char_cross_and_object_blocks_match_sklearn(featurizer_and_texts) -> None:
    feat, texts, objects = featurizer_and_texts
    lemmas = feat.preprocessor_.transform(texts)
    ids = feat.encode(lemmas)
    _identical(feat.lemma_vocabulary_.word_features(ids), feat.text_.transform(lemmas))
    _identical(feat.char_ngrams_.transform(texts), feat.chars_.transform(texts))
    slugs = [slug(o) for o in objects]
    _identical(
        feat.lemma_vocabulary_.cross_features(ids, slugs),
        feat.cross_.transform(_crosses(lemmas, objects)),
    )
    _identical(
        feat.object_tokens_.transform([[f"obj={s}"] if s else [] for s in slugs]),
        feat.object_.transform([f"obj={s}" if s else "" for s in slugs]),
    )
    rows = [5, 3, len(texts) - 1, 3]
    _identical(
        feat.lemma_vocabulary_.word_features(ids.take(rows)),
        feat.text_.transform([lemmas[i] for i in rows]),
    )


def test_stream_ids_equal_string_ids_with_two_word_lemmas(featurizer_and_texts) -> None:
    feat, *_ = featurizer_and_texts
    vocab = feat.lemma_vocabulary_
    lemmas = ["лифт", "не работать", "дом", "вода горячий", "нет", "x"]
    indptr = np.array([0, 2, 2, 4, 6])
    strings = [" ".join(lemmas[a:b]) for a, b in pairwise(indptr)]
    got, want = vocab.encode_tokens(lemmas, indptr), vocab.encode(strings)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.indptr, want.indptr)


@pytest.mark.parametrize("size", [0, 1, 7, 300, _SMALL + 5])
def test_sparse_helpers_match_scipy(size: int) -> None:
    rng = np.random.default_rng(size)
    for n_rows in (1, 3, 40):
        rows, cols = rng.integers(0, n_rows, size), rng.integers(0, 50, size)
        want = sp.csr_matrix(
            (np.ones(size, np.float32), (rows, cols)), shape=(n_rows, 50), dtype=np.float32
        )
        want.sum_duplicates()
        got = _csr(rows, cols, (n_rows, 50))
        _identical(got, want)
        other = _csr(rng.integers(0, n_rows, 9), rng.integers(0, 7, 9), (n_rows, 7))
        _identical(hstack([got, other, got]), sp.hstack([want, other, want], format="csr"))
        pick = rng.integers(0, n_rows, 5)
        _identical(take_rows(got, pick), want[pick])
