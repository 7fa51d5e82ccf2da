"""Shared fixtures: one fitted preprocessor per session (its engine is process-wide)."""

from __future__ import annotations

import pytest

from cur_ml.text import RussianPreprocessor


@pytest.fixture(scope="session")
def prep() -> RussianPreprocessor:
    return RussianPreprocessor().fit([])


@pytest.fixture(scope="session")
def prep_all_words() -> RussianPreprocessor:
    return RussianPreprocessor(drop_stopwords=False).fit([])
