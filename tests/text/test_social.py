"""social_style(): determinism (also across processes), rates of each change, safety of
digits and of the author's words when typos are off."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import pytest

from cur_ml.text import social
from cur_ml.text.social import EMOJI, social_style, social_style_many

_OPENINGS = [
    "Во дворе дома {n} по улице {s} уже неделю не вывозят мусор, контейнеры переполнены.",
    "В подъезде дома {n} на улице {s} не работает лифт. Жильцы верхних этажей ждут ответа.",
    "На улице {s} у дома {n} огромная яма на дороге; машины повреждают колёса.",
    "Третий день нет горячей воды в доме {n} по улице {s}, управляющая компания молчит.",
    "Возле школы на улице {s} не горят фонари, дети идут домой в темноте.",
]
_ENDINGS = ["", " Прошу принять меры.", " Кв. {n}, тел. 8-921-555-{n:02d}-17.", "\nОчень ждём."]
_STREETS = ["Ленина", "Садовая", "Мира", "Гагарина", "Лесная"]


def _samples(k: int) -> list[str]:
    combos = itertools.cycle(itertools.product(_OPENINGS, _ENDINGS, _STREETS))
    return [
        (o + e).format(n=3 + 7 * i % 90, s=s)
        for i, (o, e, s) in zip(range(k), combos, strict=False)
    ]


SAMPLES = _samples(200)
_CYRILLIC = re.compile(r"[а-яё]")


def _canon(text: str) -> str:
    """Cyrillic letters only, lowercased, runs of a letter squeezed to one: invariant under
    lost case, lost punctuation, spaces, stretched letters, and Latin/emoji insertions."""
    return re.sub(r"(.)\1+", r"\1", "".join(_CYRILLIC.findall(text.lower())))


@pytest.fixture
def only_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch off every per-text change, so output words line up with input words."""
    monkeypatch.setattr(social, "PROBABILITIES", dict.fromkeys(social.PROBABILITIES, 0.0))


def test_deterministic_within_process() -> None:
    assert social_style_many(SAMPLES, seed=7) == social_style_many(SAMPLES, seed=7)
    assert social_style(SAMPLES[3], "7:3") == social_style_many(SAMPLES, seed=7)[3]


def test_deterministic_across_processes() -> None:
    code = (
        "import json, sys; from cur_ml.text.social import social_style_many; "
        "print(json.dumps(social_style_many(json.load(sys.stdin), seed=7, typo_rate=0.1)))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(SAMPLES[:50]),
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        ).stdout
        for hash_seed in ("1", "2")
    ]
    here = social_style_many(SAMPLES[:50], seed=7, typo_rate=0.1)
    assert json.loads(outputs[0]) == json.loads(outputs[1]) == here


def test_seeds_differ() -> None:
    a, b = social_style_many(SAMPLES[:50], seed=1), social_style_many(SAMPLES[:50], seed=2)
    assert sum(x != y for x, y in zip(a, b, strict=True)) >= 45


@pytest.mark.parametrize(
    ("name", "present", "low", "high"),
    [
        ("hashtag", lambda t: "#" in t, 0.28, 0.52),
        ("mention", lambda t: "@" in t, 0.18, 0.42),
        ("emoji", lambda t: any(e in t for e in EMOJI), 0.38, 0.62),
        ("url", lambda t: "http" in t or "t.me" in t, 0.07, 0.25),
        ("lowercase", lambda t: t == t.lower(), 0.48, 0.72),
        ("stretched", lambda t: bool(re.search(r"([А-Яа-яЁё])\1\1", t)), 0.18, 0.42),
    ],
)
def test_rates(name: str, present: Callable[[str], bool], low: float, high: float) -> None:
    share = sum(map(present, social_style_many(SAMPLES, seed=0))) / len(SAMPLES)
    assert low <= share <= high, f"{name}: {share:.2f}"


def test_nothing_is_added_to_the_samples() -> None:
    # the rate checks above would be meaningless if the inputs already had these
    assert not any(
        "#" in t or "@" in t or "http" in t or t == t.lower() or re.search(r"([А-Яа-яЁё])\1\1", t)
        for t in SAMPLES
    )


@pytest.mark.parametrize(("typo_rate", "low", "high"), [(0.03, 0.015, 0.05), (0.2, 0.15, 0.25)])
@pytest.mark.usefixtures("only_typos")
def test_typo_rate(typo_rate: float, low: float, high: float) -> None:
    outs = social_style_many(SAMPLES, seed=0, typo_rate=typo_rate)
    pairs = [
        (w, v)
        for text, out in zip(SAMPLES, outs, strict=True)
        for w, v in zip(text.split(), out.split(), strict=True)
        if re.search(r"[А-Яа-яЁё]{4,}", w)
    ]
    changed = [(w, v) for w, v in pairs if w != v]
    assert low <= len(changed) / len(pairs) <= high, len(changed) / len(pairs)
    # one typo per word: a letter dropped or doubled, or two swapped or one replaced
    assert all(abs(len(w) - len(v)) <= 1 and w[0] == v[0] for w, v in changed), changed[:5]
    assert all(w == v for w, v in pairs if not re.search(r"[А-Яа-яЁё]{4,}", w))


@pytest.mark.usefixtures("only_typos")
def test_everything_off_keeps_the_text_but_flattens_lines() -> None:
    text = "Нет света\nв подъезде  дома 4."
    assert social_style(text, typo_rate=0) == "Нет света в подъезде дома 4."


def test_digits_survive() -> None:
    outs = social_style_many(SAMPLES, seed=3, typo_rate=0.3)
    for text, out in zip(SAMPLES, outs, strict=True):
        # every number of the text is still a whole number in the output (links add more)
        assert not Counter(re.findall(r"\d+", text)) - Counter(re.findall(r"\d+", out)), out
    # numbers side by side are never run together
    for key in range(50):
        out = social_style("Дома 12 34 56 78, 90 и 91; корпус 2", key)
        assert {"12", "34", "56", "78", "90", "91", "2"} <= set(re.findall(r"\d+", out)), out
    for key in range(20):  # every long enough word gets a typo, numbers still do not
        out = social_style("Лицевой счёт 12345678, квартира 1024", key, typo_rate=1.0)
        assert {"12345678", "1024"} <= set(re.findall(r"\d+", out)), out
    assert "5" in social_style("дом 5", 1) and "12.05.2024" in social_style("С 12.05.2024 нет", 2)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_blank_stays_blank(text: str) -> None:
    assert social_style(text, 5) == text
    assert social_style_many([text], 5) == [text]


def test_no_typos_keeps_the_authors_letters() -> None:
    # With typo_rate=0 every other change only lowercases, stretches letters, removes
    # punctuation/spaces, or adds text without Cyrillic inside, or Cyrillic at either end:
    # so the canonical letters of the input are a contiguous part of the output's.
    for seed in range(3):
        outs = social_style_many(SAMPLES, seed=seed, typo_rate=0)
        assert all(_canon(t) in _canon(o) for t, o in zip(SAMPLES, outs, strict=True))
    # and the check does notice a typo
    outs = social_style_many(SAMPLES, seed=0, typo_rate=0.2)
    assert sum(_canon(t) not in _canon(o) for t, o in zip(SAMPLES, outs, strict=True)) > 150


def test_fast_enough() -> None:
    import time

    start = time.perf_counter()
    social_style_many(SAMPLES * 10, seed=0)
    assert time.perf_counter() - start < 1.0  # 2000 texts; ~10k texts/s is the goal
