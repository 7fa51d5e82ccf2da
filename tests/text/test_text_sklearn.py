"""RussianPreprocessor follows the scikit-learn estimator contract."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline

from cur_ml.errors import InputError
from cur_ml.text import RussianPreprocessor

TEXTS = ["Не работает лифт в подъезде", "Нет воды", None, "Яма на тротуаре у д. 5"]
EXPECTED = ["не работать лифт подъезд", "нет вода", "", "яма тротуар дом"]


def test_params() -> None:
    prep = RussianPreprocessor(batch_size=10, drop_stopwords=False)
    assert prep.get_params() == {"batch_size": 10, "drop_stopwords": False, "max_chars": 20_000}
    assert prep.set_params(max_chars=5) is prep and prep.max_chars == 5


def test_clone_is_unfitted_with_same_params(prep: RussianPreprocessor) -> None:
    copy = clone(prep)
    assert copy.get_params() == prep.get_params()
    assert not hasattr(copy, "n_texts_seen_")


def test_transform_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        RussianPreprocessor().transform(["лифт"])
    with pytest.raises(NotFittedError):
        RussianPreprocessor().analyze("лифт")
    with pytest.raises(NotFittedError):
        RussianPreprocessor().pipe(["лифт"])  # raises at the call, not at the first next()


def test_fit_returns_self_and_counts() -> None:
    prep = RussianPreprocessor()
    assert prep.fit(TEXTS) is prep
    assert prep.n_texts_seen_ == len(TEXTS)
    assert prep.fit_transform(TEXTS) == EXPECTED


@pytest.mark.parametrize(
    "make",
    [
        list,
        tuple,
        iter,
        lambda t: np.array(t, dtype=object),
        pd.Series,
        lambda t: pd.DataFrame({"text": t}),
        lambda t: np.array(t, dtype=object).reshape(-1, 1),
    ],
    ids=["list", "tuple", "iterator", "ndarray", "series", "dataframe-1col", "ndarray-1col"],
)
def test_input_containers_give_same_output(prep: RussianPreprocessor, make) -> None:
    assert prep.transform(make(TEXTS)) == EXPECTED


@pytest.mark.parametrize(
    "bad",
    ["одна строка", b"bytes", 42, pd.DataFrame({"a": ["x"], "b": ["y"]})],
    ids=["str", "bytes", "int", "two-columns"],
)
def test_bad_containers_raise_input_error(prep: RussianPreprocessor, bad: object) -> None:
    with pytest.raises(InputError):
        prep.transform(bad)


@pytest.mark.parametrize("params", [{"batch_size": 0}, {"max_chars": -1}, {"batch_size": 1.5}])
def test_bad_params_raise_at_fit(params: dict) -> None:
    with pytest.raises(InputError):
        RussianPreprocessor(**params).fit(TEXTS)


def test_joblib_round_trip(prep: RussianPreprocessor, tmp_path: Path) -> None:
    path = tmp_path / "prep.joblib"
    joblib.dump(prep, path)
    loaded = joblib.load(path)
    assert loaded.transform(TEXTS) == prep.transform(TEXTS) == EXPECTED
    assert len(pickle.dumps(prep)) < 1_000  # no tokenizer or dictionaries inside


def test_in_a_pipeline_with_tfidf() -> None:
    pipe = make_pipeline(RussianPreprocessor(), TfidfVectorizer(analyzer=str.split))
    matrix = pipe.fit_transform(TEXTS)
    assert matrix.shape[0] == len(TEXTS)
    assert {"лифт", "вода", "не", "нет"} <= set(pipe[-1].vocabulary_)


def test_numpy_int_params_are_accepted() -> None:
    prep = RussianPreprocessor(batch_size=np.int64(2), max_chars=np.int32(100)).fit(TEXTS)
    assert prep.transform(TEXTS) == EXPECTED
