"""Finding a label from what an operator typed: a partial word, another form of a word,
different case or spacing («лифты» or «неиспр лифт» for «Неисправность  лифта»)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from cur_ml.text.lemmatize import get_lemmatizer

__all__ = ["find_labels", "squash"]

_WORD = re.compile(r"\w+")


def squash(text: str) -> str:
    """Case-folded, «ё» as «е», runs of whitespace as one space: how labels are compared."""
    return " ".join(text.casefold().replace("ё", "е").split())


def _lemma() -> Callable[[str], str | None]:
    """The lemma of a dictionary word, None for a word the dictionary lacks (a partial word
    has no lemma worth guessing: it is matched as typed)."""
    lemmatizer = get_lemmatizer()
    return lemmatizer.cheap


def _forms(words: Iterable[str], lemma: Callable[[str], str | None]) -> set[str]:
    forms = set()
    for word in words:
        forms.add(word)
        found = lemma(word)
        if found:
            forms.update(found.split())
    return forms


def find_labels(
    query: str, labels: Iterable[str], lemma: Callable[[str], str | None] | None = None
) -> list[str]:
    """Labels that `query` names, best first.

    The label whose squashed text equals the query's is the only answer. Otherwise a label
    matches when every word of the query, or its lemma, begins a word of the label or a
    lemma of one; labels that begin with the query come first, then the shorter.
    """
    wanted = squash(query)
    labels = list(dict.fromkeys(labels))
    if not wanted:
        return []
    exact = [label for label in labels if squash(label) == wanted]
    if exact:
        return exact[:1]
    lemma = lemma or _lemma()
    query_forms = [_forms([w], lemma) for w in _WORD.findall(wanted)]
    if not query_forms:
        return []
    found = []
    for label in labels:
        text = squash(label)
        forms = _forms(_WORD.findall(text), lemma)
        if all(any(f.startswith(q) for f in forms for q in qs) for qs in query_forms):
            found.append((not text.startswith(wanted), len(text), label))
    return [label for *_, label in sorted(found)]
