"""RussianPreprocessor: tables of appeals -> lemmas, offsets and odd inputs."""

from __future__ import annotations

import inspect
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cur_ml.text import RussianPreprocessor, Token, normalize
from cur_ml.text.normalize import _LOOKALIKES, PLACEHOLDERS

LEMMAS = [
    ("Не работает лифт в подъезде", "не работать лифт подъезд"),
    ("Нет воды уже третий день", "нет вода третий день"),
    ("Ёлка", "елка"),
    ("ЗАСОР МУСОРОПРОВОДА", "засор мусоропровод"),
    ("дoм", "дом"),  # Latin o
    ("KBАРТИРА затоплена", "квартира затопить"),  # Latin K, B
    ("Cломался замок", "сломаться замок"),  # Latin C
    ("LADA Vesta на газоне", "lada vesta газон"),
    ("см. https://gorod.gov.spb.ru/problems/2850687/", "смотреть _url_"),
    ("пишите на ivan.petrov@mail.ru", "писать _email_"),
    ("звонила по тел. +7 (921) 123-45-67", "звонить телефон _phone_"),
    ("д. 12 кв. 45", "дом квартира"),
    ("дом 47 корп. 1 лит. А", "дом корпус литера"),
    ("кв.45, подъезд 3, этаж 5", "квартира подъезд этаж"),
    ("ул.Марата, д.6", "улица марат дом"),
    ("2й подъезд, 8 этаж", "подъезд этаж"),
    ("Мусор на газоне...мусор на дороге!!!", "мусор газон мусор дорога"),
    ("Детская площадка не убирается\ufffc", "детский площадка не убираться"),
    ("Здравствуйте! Уважаемые, пожалуйста, очень просто нет воды. Спасибо", "нет вода"),
    ("т.е. и т.д.", ""),
    ("Висит какой-то провод, т.к крюк", "висеть провод крюк"),
    ("🤷🏻\u200d♂️👋🏻", ""),
    ("!!!???", ""),
    ("12345 67", ""),
    ("*** XXXX [скрыто] <ФИО> *****", ""),
    ("", ""),
    (" \n\t ", ""),
]


@pytest.mark.parametrize(("text", "expected"), LEMMAS)
def test_lemmas_table(prep: RussianPreprocessor, text: str, expected: str) -> None:
    assert prep.transform([text]) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Не работает лифт в подъезде", "не работать лифт в подъезд"),
        ("Уже неделю нет воды", "уже неделя нет вода"),
    ],
)
def test_stopwords_kept_on_request(
    prep_all_words: RussianPreprocessor, text: str, expected: str
) -> None:
    assert prep_all_words.transform([text]) == [expected]


OFFSETS = [
    (
        "Не работает лифт в подъезде",
        [("не", "Не"), ("работать", "работает"), ("лифт", "лифт"), ("подъезд", "подъезде")],
    ),
    ("ЁЛКА у д.5", [("елка", "ЁЛКА"), ("дом", "д")]),
    ("дoм", [("дом", "дoм")]),
    ("См:https://x.ru/a?b=1 и всё", [("смотреть", "См"), ("_url_", "https://x.ru/a?b=1")]),
    ("тел.+7 921 123-45-67.", [("телефон", "тел"), ("_phone_", "+7 921 123-45-67")]),
    ("mail: a.b@mail.ru!", [("mail", "mail"), ("_email_", "a.b@mail.ru")]),
]


@pytest.mark.parametrize(("text", "expected"), OFFSETS)
def test_offsets_point_into_the_original(
    prep: RussianPreprocessor, text: str, expected: list[tuple[str, str]]
) -> None:
    tokens = prep.analyze(text)
    assert [(t.lemma, text[t.start : t.end]) for t in tokens] == expected
    assert all(isinstance(t, Token) for t in tokens)


@pytest.mark.parametrize("value", [None, math.nan, float("nan"), 42, b"bytes", ["list"]])
def test_missing_and_non_str_are_empty(prep: RussianPreprocessor, value: object) -> None:
    assert prep.transform([value, "лифт"]) == ["", "лифт"]
    assert prep.analyze(value) == []


def test_long_text_is_truncated(prep: RussianPreprocessor) -> None:
    text = "Не работает лифт в подъезде. " * 3500  # ~100,000 characters
    tokens = prep.analyze(text)
    assert tokens and max(t.end for t in tokens) <= prep.max_chars
    longer = RussianPreprocessor(max_chars=200_000).fit([]).analyze(text)
    assert len(longer) == 4 * 3500


def test_batch_equals_one_by_one(prep: RussianPreprocessor) -> None:
    texts = [text for text, _ in LEMMAS]
    one_by_one = [prep.transform([t])[0] for t in texts]
    for size in (1, 2, 7, 500):
        batched = RussianPreprocessor(batch_size=size).fit([]).transform(texts)
        assert batched == one_by_one


def test_pipe_streams(prep: RussianPreprocessor) -> None:
    stream = prep.pipe(("лифт не работает" for _ in range(1001)), batch_size=100)
    assert inspect.isgenerator(stream)
    first = next(stream)
    assert [t.lemma for t in first] == ["лифт", "не", "работать"]
    assert sum(1 for _ in stream) == 1000


WORDY = st.lists(
    st.sampled_from(
        list("абвгдеёжзиклмнопрстуфхцчшщъыьэюяАБВЁЖЗКЛМНОПХaeopcxykmKBOX0123456789")
        + list(" \n.,!?-:/@*()")
        + ["🤷", " лифт ", "Подъезд", "https://x.ru", " д. ", "т.е.", "ул.", "не", "ё"]
    ),
    max_size=40,
).map("".join)


def _fold(surface: str) -> str:
    return surface.lower().replace("ё", "е")


@settings(max_examples=150, deadline=None)
@given(WORDY)
def test_offsets_property(text: str) -> None:
    prep = RussianPreprocessor(drop_stopwords=False).fit([])
    tokens = prep.analyze(text)
    norm = normalize(text)
    for token in tokens:
        assert 0 <= token.start < token.end <= len(text)
        if token.lemma in PLACEHOLDERS:
            continue
        surface = norm[token.start : token.end]
        assert surface.isalpha()
        folded = _fold(text[token.start : token.end])
        assert surface in (folded, folded.translate(_LOOKALIKES))
    assert prep.transform([text]) == [" ".join(t.lemma for t in tokens)]


@pytest.mark.parametrize(("text", "surface"), [("дoм", "дом"), ("KBАРТИРА", "квартира")])
def test_lookalike_surface(text: str, surface: str) -> None:
    assert normalize(text) == surface
    assert _fold(text) != surface  # only the look-alike map makes them equal


def test_broken_unicode_does_not_crash(prep: RussianPreprocessor) -> None:
    assert prep.transform(["лифт \ud800 вода", "\x00лифт\x00"]) == ["лифт вода", "лифт"]


def test_letters_without_a_unicode_name_do_not_crash():
    # Found by fuzzing the API: pymorphy3 calls unicodedata.name() on every letter.
    from cur_ml.text import RussianPreprocessor

    out = RussianPreprocessor().fit([]).transform(["A\U00017000 мусор", "\U00017000"])
    assert out[0].endswith("мусор")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Social posts: stretched letters, run-together words, typos, greetings and tags.
        ("Не работает лиииифт!!!", "не работать лифт"),
        ("Во дворе не вывозятмусор", "двор не вывозить мусор"),
        ("неработает освещение вподъезде", "не работать освещение подъезд"),
        ("Мусор не вывозят уже ндеелю", "мусор не вывозить неделя"),
        ("Здравствуйте! Яма на дороге. Заранее спасибо #СПб @gubernator_spb", "яма дорога"),
        # Words the dictionary knows are never "repaired"; unknown names stay as they are.
        ("Дыбенко", "дыбенко"),
    ],
)
def test_social_writing_is_repaired(prep: RussianPreprocessor, text: str, expected: str) -> None:
    assert prep.transform([text]) == [expected]
