"""Near-identical appeals: the same normalised text, or lemma sets close enough (Jaccard)."""

from __future__ import annotations

import pytest

from cur_ml.text.duplicates import jaccard, lemma_sets, near_duplicates, normalised

LEAD = "Третий день не работает лифт в подъезде, пожилые не могут выйти"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Лифт  НЕ работает!!! ", "лифт не работает"),
        ("Ёлка во дворе — упала.", "елка во дворе упала"),
        ("", ""),
    ],
)
def test_normalised_text(text, expected):
    assert normalised(text) == expected


@pytest.mark.parametrize(
    ("text", "same", "near"),
    [
        ("третий день НЕ работает лифт в подъезде... пожилые не могут выйти!", True, True),
        ("Не работает лифт в подъезде третий день, пожилые не могут выйти", False, True),
        ("Лифты не работают в подъездах третьи сутки, пожилым не выйти", False, False),
        ("Во дворе переполнены мусорные баки, мусор не вывозят неделю", False, False),
    ],
)
def test_near_duplicates_of_an_appeal(text, same, near):
    found = near_duplicates(LEAD, {"x": text}, threshold=0.8)
    assert bool(found) == near
    if found:
        assert found[0].same_text == same
        assert found[0].similarity >= 0.8 and (found[0].similarity == 1.0 or not same)


def test_lemmas_make_word_forms_meet():
    lead, other = lemma_sets(["не работает лифт", "лифты не работали"])
    assert jaccard(lead, other) == 1.0
    assert jaccard(frozenset(), frozenset()) == 0.0  # nothing to compare is no match


def test_the_most_similar_come_first():
    candidates = {
        "a": "Не работает лифт в подъезде третий день, пожилые люди не могут выйти из дома",
        "b": LEAD.upper(),
        "c": "Не работает лифт в подъезде третий день, пожилые не могут выйти",
    }
    found = near_duplicates(LEAD, candidates, threshold=0.6)
    assert [m.key for m in found][:2] == ["b", "c"]
    assert [m.similarity for m in found] == sorted((m.similarity for m in found), reverse=True)
