"""Length-preserving normalisation of Russian appeals.

``normalize(text)`` returns a string of exactly ``len(text)`` characters, so offsets
found in it are offsets into the original text. Nothing is inserted or deleted:
characters are mapped one to one, and matched spans (URLs, numbers, emoji...) are
overwritten by a placeholder word padded with spaces, or by spaces alone.

No pattern crosses a line break, so normalising texts joined by ``"\\n\\n"`` gives
the same result as normalising each text on its own (the batch path relies on it).
"""

from __future__ import annotations

import re

__all__ = ["PLACEHOLDERS", "normalize"]

URL = "_url_"
EMAIL = "_email_"
PHONE = "_phone_"
PLACEHOLDERS: frozenset[str] = frozenset({URL, EMAIL, PHONE})

# Global 1:1 maps (after lowercasing). str.replace, not str.translate: on the whole
# corpus translate takes 0.28 s (a dict lookup per character), these replaces 0.001 s.
# str.translate does the look-alike map, on the few mixed words only.
_CHAR_REPLACEMENTS = (
    ("ё", "е"),
    ("\u00a0", " "),  # no-break space
    ("\u00ad", " "),  # soft hyphen
    ("\u200b", " "),  # zero-width space
    ("\u2028", " "),
    ("\u2029", " "),
    ("\ufeff", " "),
    ("\ufffc", " "),  # object replacement (pasted pictures)
    ("\ufffd", " "),
    ("\u200c", " "),  # zero-width (non-)joiners, keycap mark: parts of emoji
    ("\u200d", " "),
    ("\u20e3", " "),
)
# Latin letters that look like Cyrillic ones (lowercase), applied inside mixed words.
_LOOKALIKES = str.maketrans("aeopcxykmthb", "аеорсхукмтнв")

# Patterns start with a literal or a character class (a lookbehind comes after the
# first character) so that the regex engine can skip ahead instead of trying every
# position; the rarer ones run only when a cheap substring test says they can match.
_NOT_LETTER_AFTER = r"(?![^\W\d_])"
_URL_STOP = r"[^\s<>\"'«»()\[\]{}.,;:!?]"
_URL_CHAR = r"[^\s<>\"'«»()\[\]{}]"
_TLD = r"(?:ru|su|com|org|net|info|рф)"

_EMAIL = re.compile(r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-zа-я]{2,}")
_URL_HINT = re.compile(rf"https?://|www\.|\.{_TLD}\b")
_URL = re.compile(
    rf"(?:https?://|www\.){_URL_CHAR}*{_URL_STOP}"
    rf"|[a-z0-9](?<![\w.@-][a-z0-9])[a-z0-9-]*(?:\.[a-z0-9-]+)*\.{_TLD}\b"
    rf"(?:/(?:{_URL_CHAR}*{_URL_STOP})?)?"
)
_NOT_SPACE = re.compile(r"\S*")
_MASKS = re.compile(r"\*{2,}|\[[^\[\]\n]{1,40}\]|<[^<>\n]{1,40}>")
_MASK_LETTERS = re.compile(r"[xх](?<![^\W\d_][xх])[xх]{2,}(?![^\W\d_])")
# "т.е.", "т. к.", "т.д.", "т.п.": fillers whose letters would read as words ("д" = дом).
_FILLERS = re.compile(r"т\.(?<![^\W\d_]т\.)[ \t]?[дпекчн](?:\.|(?![^\W\d_]))")
# House letter after "лит"/"литер"/"литера" ("лит. А", "литА"): blank the letter only.
_HOUSE_LETTER = re.compile(
    rf"лит(?<![^\W\d_]лит)(?:(?:ера?)?\.?[ \t]+|\.?)[а-жa-e]{_NOT_LETTER_AFTER}"
)
# Numbers: digit groups ("12/2", "07.11.2020") with the spaces, dashes and brackets
# between them ("+7 (921) 123-45-67") and a glued house letter or ending ("2к", "1-й").
# A group that reads as a phone number becomes the phone placeholder.
_NUMBER = re.compile(
    r"[+(]?\d+(?:[.,:/\\-]\d+)*(?:[ \t()-]+\d+(?:[.,:/\\-]\d+)*)*"
    rf"(?:-?(?:[а-яa-z]|го|ми|му|ом|ой|ая|ое|ые|ий|ый|ых|ым|ую|ого|ому|ыми){_NOT_LETTER_AFTER})?"
)
_PHONE = re.compile(
    r"(?:\+?7|8|\(8)[ \t(-]*\d{3}[ \t)-]*\d{3}[ \t-]*\d{2}[ \t-]*\d{2}"
    r"|(?:\(\d{3,5}\)[ \t]?)?\d{3}-\d{2}-\d{2}"
)
_REPEATED_PUNCT = re.compile(r"([!?.…=_~#*+-])\1+")
# Pictographs (emoji, arrows, dingbats, variation selectors), control characters and
# lone surrogates (spaCy cannot encode them) become spaces.
_NOISE = re.compile(
    "[\U0001f000-\U0001faff\u2190-\u21ff\u2300-\u23ff\u25a0-\u27bf\u2b00-\u2bff"
    "\ufe00-\ufe0f\U000e0000-\U000e007f\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]+"
)
# Social-network furniture: @mentions and #hashtags ("#ЖКХ_СПб #помогите") name pages and
# moods, not the problem; greetings and sign-offs open and close posts on every topic.
_TAGS = re.compile(r"[@#][\w.]*\w")
_ADDRESSEE = r"(?:,? (?:уважаем\w* )?(?:администрация|власти|коллеги|друзья|соседи|все(?:м|х)?))?"
_BOILERPLATE = re.compile(
    # greetings and forms of address
    r"(?<![^\W\d_])(?:(?:здравствуйте|здраствуйте|добр(?:ый|ого) (?:день|вечер|дня|вечера)"
    r"|доброе утро|доброго времени суток|приветствую(?: вас)?|привет)"
    + _ADDRESSEE
    + r"|уважаем(?:ые|ый|ая) (?:власти|администрация|коллеги|сотрудники|господа|депутаты)"
    r"|люди добрые|добрые люди"
    # thanks, calls for help and action that close posts on every topic
    r"|(?:заранее )?(?:спасибо|благодарю)(?: заранее)?(?: за (?:помощь|внимание|понимание))?"
    r"|с уважением|помогите(?:,? пожалуйста)?|примите меры|разберитесь(?: уже)?"
    r"|сколько (?:можно|это будет продолжаться)|надеюсь на (?:ответ|помощь|понимание))"
    r"(?![^\W\d_])"
)
_BOILERPLATE_HINT = re.compile(
    r"здра|добр|привет|спасиб|благодар|уважа|помогите|примите|разберит|сколько|надеюсь"
)
_LATIN_RUN = re.compile(r"[a-z]+")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzабвгдежзийклмнопрстуфхцчшщъыьэюя")


def _blank(match: re.Match[str]) -> str:
    return " " * (match.end() - match.start())


def _pad(placeholder: str, match: re.Match[str]) -> str:
    """Placeholder padded to the match length; a glued match gets a space before it."""
    start, size = match.start(), match.end() - match.start()
    if start > 0 and not match.string[start - 1].isspace() and size > len(placeholder):
        return (" " + placeholder).ljust(size)
    if size >= len(placeholder):
        return placeholder.ljust(size)
    return " " * size


def _email(match: re.Match[str]) -> str:
    return _pad(EMAIL, match)


def _url(match: re.Match[str]) -> str:
    return _pad(URL, match)


def _number(match: re.Match[str]) -> str:
    size = match.end() - match.start()
    if size >= 9 and _PHONE.fullmatch(match.group()):
        return _pad(PHONE, match)
    return " " * size


def _urls(text: str) -> str:
    """Replace URLs, looking only at the whitespace-free chunks around a hint."""
    pieces: list[str] = []
    done = 0
    for hint in _URL_HINT.finditer(text):
        if hint.start() < done:
            continue
        start = max(text.rfind(" ", done, hint.start()), text.rfind("\n", done, hint.start()))
        start = max(start + 1, done)
        end = _NOT_SPACE.match(text, hint.start()).end()
        pieces += (text[done:start], _URL.sub(_url, text[start:end]))
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _house_letter(match: re.Match[str]) -> str:
    return match.group()[:-1] + " "


def _punct(match: re.Match[str]) -> str:
    return match.group(1).ljust(match.end() - match.start())


def _fix_lookalikes(text: str) -> str:
    """Latin look-alikes -> Cyrillic inside words that are mostly Cyrillic ("дoм")."""
    pieces: list[str] = []
    done = 0  # text[:done] is settled
    for match in _LATIN_RUN.finditer(text):
        start, end = match.span()
        if start < done:
            continue
        before = start > 0 and "а" <= text[start - 1] <= "я"
        if not (before or (end < len(text) and "а" <= text[end] <= "я")):
            continue
        while start > 0 and text[start - 1] in _LETTERS:
            start -= 1
        while end < len(text) and text[end] in _LETTERS:
            end += 1
        word = text[start:end]
        n_latin = sum(len(m) for m in _LATIN_RUN.findall(word))
        if 2 * n_latin < len(word):
            pieces += (text[done:start], word.translate(_LOOKALIKES))
            done = end
        else:
            pieces.append(text[done:end])
            done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _lower(text: str) -> str:
    low = text.lower()
    if len(low) == len(text):
        return low
    # a few characters lowercase to two ("İ"): keep those as they are
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def normalize(text: str) -> str:
    """Lowercase, unify letters, hide contacts, numbers and noise; keep the length.

    The result is always UTF-8 encodable (lone surrogates become spaces).

    >>> normalize("Ёлка у д.12, см. https://x.ru!!!")
    'елка у д.  , см. _url_       !  '
    """
    text = _lower(text)
    for old, new in _CHAR_REPLACEMENTS:
        text = text.replace(old, new)
    text = _NOISE.sub(_blank, text)
    if "@" in text:
        text = _EMAIL.sub(_email, text)
    text = _urls(text)
    if "@" in text or "#" in text:
        text = _TAGS.sub(_blank, text)
    if _BOILERPLATE_HINT.search(text):
        text = _BOILERPLATE.sub(_blank, text)
    if "**" in text or "[" in text or "<" in text:
        text = _MASKS.sub(_blank, text)
    if "xxx" in text or "ххх" in text:
        text = _MASK_LETTERS.sub(_blank, text)
    if "т." in text:
        text = _FILLERS.sub(_blank, text)
    if "лит" in text:
        text = _HOUSE_LETTER.sub(_house_letter, text)
    text = _NUMBER.sub(_number, text)
    text = _REPEATED_PUNCT.sub(_punct, text)
    return _fix_lookalikes(text)
