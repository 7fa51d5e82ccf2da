"""STOPWORDS: lemmas without topic; negation and place words are not in it."""

from __future__ import annotations

import pytest

from cur_ml.text import STOPWORDS


@pytest.mark.parametrize(
    "word", ["не", "нет", "ни", "нельзя", "дом", "двор", "улица", "подъезд", "вода", "лифт"]
)
def test_kept(word: str) -> None:
    assert word not in STOPWORDS


@pytest.mark.parametrize(
    "word",
    [
        "я",
        "он",
        "в",
        "на",
        "и",
        "что",
        "здравствуйте",
        "пожалуйста",
        "спасибо",
        "уважаемый",
        "очень",
        "просто",
        "быть",
        "все",
        "еще",
        "д",
        "z",
    ],
)
def test_dropped(word: str) -> None:
    assert word in STOPWORDS


def test_entries_are_lemma_shaped() -> None:
    for word in STOPWORDS:
        assert word == word.lower() and "ё" not in word and word.isalpha(), word
