"""Deterministic "social-network style" rewriting of appeal texts.

Appeals arrive not only through the portal form but also as posts and comments on
VK, Telegram and OK, written differently: greetings and sign-offs, hashtags,
@mentions, emoji, links, no capitals, no punctuation, stretched letters, words run
together, typos. The benchmark's "social style" channel applies :func:`social_style_many`
to the ``dev`` split and scores the model on the result, to measure how much quality
that costs. The rewrite must be reproducible, so every decision comes from a
``random.Random`` seeded with a sha256 of ``"{key}:{text}"`` (never ``hash()``, which
is salted per process): the output depends only on (text, key, typo_rate).

Each transformation happens to a text with a fixed probability (:data:`PROBABILITIES`).
Typos hit ``typo_rate`` of the words of 4+ Cyrillic letters. Digits are never changed,
line breaks are flattened to spaces, and an empty (or blank) text is returned as is.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from types import MappingProxyType

__all__ = ["PROBABILITIES", "social_style", "social_style_many"]

# Share of texts that get each transformation (typos are per word, see typo_rate).
PROBABILITIES = MappingProxyType(
    {
        "greeting": 0.5,  # "Здравствуйте!" in front
        "signoff": 0.4,  # "Заранее спасибо" at the end
        "hashtags": 0.4,  # 1-3 hashtags at the start or the end
        "mention": 0.3,  # one @account at the start or the end
        "emoji": 0.5,  # 1-3 emoji after sentences or at the end
        "url": 0.15,  # a post / photo link at the end
        "lowercase": 0.6,  # capitals lost
        "drop_punct": 0.5,  # . , ; : lost (kept inside numbers: 12.05, 5,5)
        "repeat": 0.3,  # 1-2 stretched letters ("оооочень") and "!!!"
        "run_together": 0.2,  # a missed space between two words, once or twice
    }
)

GREETINGS = (
    "Здравствуйте!", "Добрый день!", "Добрый вечер.", "Доброе утро, администрация!",
    "Привет всем", "Уважаемые власти!", "Помогите!", "Люди добрые,",
)  # fmt: skip
SIGNOFFS = (
    "Спасибо", "Помогите пожалуйста!!!", "Заранее спасибо!", "Сколько можно?!",
    "Примите меры!", "Разберитесь уже!", "Надеюсь на ответ.",
)  # fmt: skip
HASHTAGS = ("#СПб", "#ЖКХ", "#беспредел", "#помогите", "#Петербург", "#ЖКХ_СПб", "#жалоба")
MENTIONS = ("@gubernator_spb", "@admin_spb", "@nashspb", "@gzhi_spb", "@spb_today")
EMOJI = ("😡", "🤬", "😢", "🙏", "👍", "‼️", "❗", "🏠", "🚧", "🤦")
URLS = (
    "https://vk.com/wall-12345_678", "https://t.me/nashspb/4521", "t.me/spb_zhkh/1093",
    "https://vk.com/photo-55555_45678", "https://sun9-12.userapi.com/impg/a1b2c3.jpg",
    "https://ok.ru/group/5432/topic/1234",
)  # fmt: skip

# ЙЦУКЕН rows; each row sits half a key to the right of the one above it.
_ROWS = ("йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю")


def _keyboard_neighbours() -> dict[str, str]:
    near: dict[str, str] = {}
    for r, row in enumerate(_ROWS):
        for i, ch in enumerate(row):
            keys = set(row[max(i - 1, 0) : i + 2])
            if r > 0:  # above: keys i and i+1
                keys |= set(_ROWS[r - 1][i : i + 2])
            if r < len(_ROWS) - 1:  # below: keys i-1 and i
                keys |= set(_ROWS[r + 1][max(i - 1, 0) : i + 1])
            near[ch] = "".join(sorted(keys - {ch}))
    return near


_NEIGHBOURS = _keyboard_neighbours()
_TYPO_WORD = re.compile(r"[А-Яа-яЁё]{4,}")
_STRETCH_WORD = re.compile(r"[А-Яа-яЁё]{3,}")
_VOWELS = frozenset("аеёиоуыэюяАЕЁИОУЫЭЮЯ")
_LETTER_GAP = re.compile(r"(?<=[^\W\d_]) (?=[^\W\d_])")  # a space between two letters
_SENTENCE_END = re.compile(r"[.!?](?= )")
# . , ; : unless it sits between two digits (12.05.2024, 5,5 stay intact)
_PUNCT = re.compile(r"(?<!\d)[.,;:]|[.,;:](?!\d)")


def _rng(key: str | int, text: str) -> random.Random:
    digest = hashlib.sha256(f"{key}:{text}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _typo(word: str, rng: random.Random) -> str:
    """One typo; the first letter is kept (people rarely miss it) and is never moved."""
    kind = rng.choice(("swap", "drop", "double", "neighbour"))
    i = rng.randrange(1, len(word))
    if kind == "swap":
        # only pairs of different letters, so the word really changes
        pairs = [j for j in range(1, len(word) - 1) if word[j].lower() != word[j + 1].lower()]
        if pairs:
            j = rng.choice(pairs)
            return word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    elif kind == "drop":
        return word[:i] + word[i + 1 :]
    elif kind == "neighbour" and (near := _NEIGHBOURS.get(word[i].lower())):
        c = rng.choice(near)
        return word[:i] + (c.upper() if word[i].isupper() else c) + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double (also the fallback: always a change)


def _typos(text: str, rng: random.Random, rate: float) -> str:
    if rate <= 0:
        return text
    return _TYPO_WORD.sub(lambda m: _typo(m[0], rng) if rng.random() < rate else m[0], text)


def _stretch(text: str, rng: random.Random) -> str:
    """Stretch a letter in 1-2 words ("оооочень") and turn the first "!" into "!!!"."""
    words = list(_STRETCH_WORD.finditer(text))
    chosen = rng.sample(words, min(len(words), rng.randint(1, 2)))
    for m in sorted(chosen, key=lambda m: m.start(), reverse=True):  # right to left: offsets hold
        vowels = [i for i, c in enumerate(m[0]) if c in _VOWELS] or [len(m[0]) - 1]
        at = m.start() + rng.choice(vowels)
        text = text[:at] + text[at] * rng.randint(2, 4) + text[at:]
    return re.sub(r"!+", "!!!", text, count=1)


def _run_together(text: str, rng: random.Random) -> str:
    gaps = [m.start() for m in _LETTER_GAP.finditer(text)]  # letters only: numbers never merge
    for at in sorted(rng.sample(gaps, min(len(gaps), rng.randint(1, 2))), reverse=True):
        text = text[:at] + text[at + 1 :]
    return text


def _emoji(text: str, rng: random.Random) -> str:
    spots = [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    for at in sorted((rng.choice(spots) for _ in range(rng.randint(1, 3))), reverse=True):
        text = f"{text[:at]} {rng.choice(EMOJI)}{text[at:]}"
    return text


def _around(text: str, extra: str, rng: random.Random) -> str:
    return f"{extra} {text}" if rng.random() < 0.5 else f"{text} {extra}"


def social_style(text: str, key: str | int = 0, *, typo_rate: float = 0.03) -> str:
    """Rewrite ``text`` as a social-network post; the same (text, key, typo_rate) gives
    the same output in any process."""
    if not text.strip():
        return text
    rng = _rng(key, text)
    p = PROBABILITIES
    # Every decision is drawn up front, in a fixed order, so they do not depend on each other.
    on = {name: rng.random() < p[name] for name in sorted(p)}
    out = _typos(" ".join(text.split()), rng, typo_rate)  # typos hit the author's words only
    if on["greeting"]:
        out = f"{rng.choice(GREETINGS)} {out}"
    if on["signoff"]:
        out = f"{out} {rng.choice(SIGNOFFS)}"
    if on["repeat"]:
        out = _stretch(out, rng)
    if on["run_together"]:
        out = _run_together(out, rng)
    if on["emoji"]:  # before dropping punctuation: it needs the sentence ends
        out = _emoji(out, rng)
    if on["drop_punct"]:  # before links and accounts, which need their dots
        out = _PUNCT.sub("", out)
    if on["mention"]:
        out = _around(out, rng.choice(MENTIONS), rng)
    if on["url"]:
        out = f"{out} {rng.choice(URLS)}"
    if on["hashtags"]:
        out = _around(out, " ".join(rng.sample(HASHTAGS, rng.randint(1, 3))), rng)
    return out.lower() if on["lowercase"] else out


def social_style_many(texts: Sequence[str], seed: int = 0, *, typo_rate: float = 0.03) -> list[str]:
    """:func:`social_style` of each text with key ``f"{seed}:{i}"`` (i = its index)."""
    return [social_style(t, f"{seed}:{i}", typo_rate=typo_rate) for i, t in enumerate(texts)]
