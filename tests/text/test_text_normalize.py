"""normalize(): table of Russian inputs -> exact output, and length preservation."""

from __future__ import annotations

import doctest
import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cur_ml.text import normalize

CASES = [
    # lowercase, ё -> е
    ("Ёлка ЁЖИК", "елка ежик"),
    # Latin look-alikes inside mostly Cyrillic words; Latin words stay Latin
    ("дoм KBАРТИРА Cломался", "дом квартира сломался"),
    ("LADA Vesta", "lada vesta"),
    ("нopmами", "нормами"),
    # contacts -> placeholders padded to the same length
    ("https://gorod.gov.spb.ru/problems/2850687/", "_url_".ljust(42)),
    ("см.www.spb.ru)", "см. _url_    )"),
    ("почта ivan.petrov@mail.ru.", "почта " + "_email_".ljust(19) + "."),
    ("+7 (921) 123-45-67", "_phone_" + " " * 11),
    ("тел. 604-00-00", "тел. _phone_  "),
    ("88126271744", "_phone_    "),
    # numbers: house, flat, floor numbers and dates go, keywords stay
    ("д. 12 кв. 45", "д.    кв.   "),
    ("дом 47 корп. 1 лит. А", "дом    корп.   лит.  "),
    ("кв.45 подъезд 3 этаж 5, литА", "кв.   подъезд   этаж  , лит "),
    ("2й 1-й 12/2 2к1 100кг", " " * 19 + "кг"),
    ("заявка 2890463 от 07.11.2020", "заявка         от           "),
    # pictographs, repeated punctuation, masked personal data
    ("лифт 🤷🏻\u200d♂️!", "лифт      !"),
    ("!!!??? ....", "!  ?   .   "),
    ("*** XXXX [скрыто] <ФИО> *****", " " * 29),
    ("т.е. и т. к.", "     и      "),
    ("литр литая", "литр литая"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_normalize_table(text: str, expected: str) -> None:
    assert normalize(text) == expected


@given(st.text())
def test_length_is_preserved(text: str) -> None:
    assert len(normalize(text)) == len(text)


PIECES = st.sampled_from(
    list("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВЁЖЗКЛМНОПХ")
    + list("aeopcxykmthbKBOXz")
    + list("0123456789 \t\n.,!?-:/@*[]<>()+_№«»")
    + ["🤷", "👋🏻", "\u200d", "\ufe0f", "✔", "https://", "www.", ".ru", "лит", "т.", "xxx"]
)
RUSSIANISH = st.lists(PIECES, max_size=60).map("".join)


@given(RUSSIANISH, RUSSIANISH)
def test_joined_texts_normalise_like_separate_ones(a: str, b: str) -> None:
    assert normalize(a + "\n\n" + b) == normalize(a) + "\n\n" + normalize(b)


@given(RUSSIANISH)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@pytest.mark.parametrize(
    ("text", "expected"),
    [("лифт\x00\x07вода", "лифт  вода"), ("a\ud800b", "a b"), ("\ufeffлифт\u00a0", " лифт ")],
)
def test_control_characters_and_surrogates_become_spaces(text: str, expected: str) -> None:
    assert normalize(text) == expected
    normalize(text).encode("utf-8")


def test_docstring_example() -> None:
    module = importlib.import_module("cur_ml.text.normalize")
    assert doctest.testmod(module).failed == 0
