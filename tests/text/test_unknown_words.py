"""Words the dictionary lacks cost ~50x a known word: their full analysis has a budget."""

from __future__ import annotations

import random

from cur_ml.text.engine import UNKNOWN_WORDS_BASE, UNKNOWN_WORDS_PER, Engine
from cur_ml.text.lemmatize import get_lemmatizer

ALPHABET = "абвгдежзийклмнопрстуфхцчшщъыьэюя"


class CountingLemmatizer:
    """The shared lemmatizer, recording which words took the costly path."""

    def __init__(self) -> None:
        self.inner = get_lemmatizer()
        self.costly: list[str] = []

    def cheap(self, word: str) -> str | None:
        return self.inner.cheap(word)

    def __call__(self, word: str) -> str:
        self.costly.append(word)
        return self.inner(word)


def random_words(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(6, 12))) for _ in range(n)]


def test_a_text_of_random_letters_gets_a_bounded_number_of_full_analyses() -> None:
    lemmatizer = CountingLemmatizer()
    engine = Engine(lemmatizer=lemmatizer)  # type: ignore[arg-type]
    words = random_words(400)
    lemmas = engine.run([" ".join(words)]).strings()[0].split()
    budget = UNKNOWN_WORDS_BASE + len(words) // UNKNOWN_WORDS_PER
    assert len(lemmatizer.costly) == budget
    kept = [w for w, lemma in zip(words, lemmas, strict=True) if w == lemma]
    assert len(kept) >= len(words) - budget  # the rest are kept as written


def test_a_word_kept_as_written_is_analysed_by_a_later_batch() -> None:
    lemmatizer = CountingLemmatizer()
    engine = Engine(lemmatizer=lemmatizer)  # type: ignore[arg-type]
    words = random_words(400, seed=1)
    engine.run([" ".join(words)])
    last = words[-1]
    assert last not in lemmatizer.costly  # past the budget
    engine.run([f"{last} во дворе"])
    assert lemmatizer.costly[-1] == last  # not cached as itself: analysed now


def test_dictionary_words_are_never_held_back() -> None:
    lemmatizer = CountingLemmatizer()
    engine = Engine(lemmatizer=lemmatizer)  # type: ignore[arg-type]
    text = " ".join(["не работают лифты в подъездах домов"] * 200 + random_words(400, seed=2))
    lemmas = engine.run([text]).strings()[0].split()
    assert lemmas[:5] == ["не", "работать", "лифт", "подъезд", "дом"]
    assert all(w in {"не", "работать", "лифт", "подъезд", "дом"} for w in lemmas[:1000])
