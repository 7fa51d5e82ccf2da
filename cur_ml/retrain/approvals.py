"""Which labels a correction may carry, and what a corrected reason brings with it.

Operators may only choose a label the served model can answer (or one an admin approved):
a free-text label would become a class of the next model. A corrected reason moves the
category and urgency that the model's taxonomy ties to it, and a request that says
otherwise in the same breath is refused: training would learn the contradiction.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cur_ml.model.bundle import RoutingModel

__all__ = ["FOLLOWS_REASON", "URGENCIES", "LabelBook", "contradictions", "suggest"]

URGENCIES = ("high", "medium", "low")
#: Fields that a corrected reason moves with it (the taxonomy ties them to the reason).
FOLLOWS_REASON = ("category", "urgency")
_NOUN = {
    "category": "такой категории",
    "reason": "такой причины",
    "urgency": "такой срочности",
    "agency": "такого ведомства",
}
_WORD = re.compile(r"\w+")
_CACHE_KEY = "correction_label_book"


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _stem(word: str) -> str:
    """A crude stem (Russian endings are at most two letters here): 'мусора' → 'мусо'."""
    return word[: max(3, len(word) - 2)]


def suggest(value: str, labels: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` labels closest to `value`: the same label in another case first, then
    `difflib`'s close matches, then labels sharing a word (by its stem) with `value`."""
    by_fold: dict[str, str] = {}
    for label in labels:
        by_fold.setdefault(label.casefold(), label)
    folded = " ".join(value.casefold().split())
    found: list[str] = []
    if folded in by_fold:
        found.append(by_fold[folded])
    found += [by_fold[m] for m in difflib.get_close_matches(folded, by_fold, n=n, cutoff=0.6)]
    asked = {w for w in _words(folded) if len(w) >= 3}
    if asked and len(found) < n:
        stems = {_stem(w) for w in asked}
        scored = []
        for fold, label in by_fold.items():
            words = _words(fold)
            hits = sum(any(w.startswith(s) for w in words) for s in stems)
            if hits:
                whole = len(asked.intersection(words))  # the word itself beats a longer one
                ratio = difflib.SequenceMatcher(None, folded, fold).ratio()
                scored.append((-hits, -whole, -ratio, label))
        found += [label for *_, label in sorted(scored)]
    return list(dict.fromkeys(found))[:n]


def _agency_names(model: RoutingModel) -> set[str]:
    """Every agency name the model can answer: its training agencies, free roles, and each
    district role filled with each district it knows (a place or the district head)."""
    classifier = model.classifier
    tax = classifier.taxonomy_
    names = {str(a) for a in tax.agencies}
    resolver = getattr(classifier, "place_resolver_", None)
    districts = set(tax.districts) | set(getattr(resolver, "districts_", ()))
    for role in getattr(classifier, "roles_", ()):
        if tax.agency_of(role, "") is not None:
            names.add(str(role))
        else:
            names.update(str(tax.agency_of(role, d)) for d in districts if d)
    return names


@dataclass(frozen=True)
class LabelBook:
    """The label sets of a served model, and the taxonomy that ties reasons to the rest."""

    labels: Mapping[str, frozenset[str]]
    category_of: Mapping[str, str]
    urgency_of: Mapping[str, str]

    @classmethod
    def of(cls, model: RoutingModel) -> LabelBook:
        """The book of `model`, built once per loaded model (kept in its serving cache)."""
        cache = model.classifier.serving_cache
        book = cache.get(_CACHE_KEY)
        if book is None:
            tax = model.classifier.taxonomy_
            sets = model.label_sets()
            book = cache[_CACHE_KEY] = cls(
                labels={
                    "category": frozenset(sets["category"]),
                    "reason": frozenset(sets["reason"]),
                    "urgency": frozenset(URGENCIES),
                    "agency": frozenset(_agency_names(model)),
                },
                category_of=dict(tax.category_of),
                urgency_of=dict(tax.urgency_of),
            )
        return book

    def knows(self, field: str, value: str) -> bool:
        return value in self.labels.get(field, ())

    def follows(self, reason: str) -> dict[str, str]:
        """The category and urgency the taxonomy ties to `reason` (empty for a reason it
        does not know, such as a newly approved one)."""
        if reason not in self.category_of:
            return {}
        return {"category": self.category_of[reason], "urgency": self.urgency_of[reason]}

    def unknown(self, field: str, value: str, closest: bool = True) -> str:
        """Why `value` is refused for `field`, with the closest labels to choose instead
        (`closest=False` skips the search, a few milliseconds against a real label set)."""
        shown = value if len(value) <= 120 else value[:119] + "…"
        near = suggest(value, self.labels.get(field, ())) if closest else []
        hint = (
            "ближайшие: " + ", ".join(f"«{s}»" for s in near)
            if near
            else "список меток: GET /v1/model"
        )
        return f"нет {_NOUN.get(field, 'такой метки')} «{shown}» ({field}) у модели; {hint}"


def contradictions(items: Sequence[tuple[str, str, str]], book: LabelBook) -> dict[int, list[str]]:
    """Positions of (prediction_id, field, value) items that contradict a reason given in the
    same request, with what is wrong; both the reason and the contradicting item are named.

    The last reason of a prediction in the request is the one in force afterwards.
    """
    last_reason: dict[str, int] = {}
    for i, (pid, field, _value) in enumerate(items):
        if field == "reason":
            last_reason[pid] = i
    out: dict[int, list[str]] = {}
    for i, (pid, field, value) in enumerate(items):
        if field not in FOLLOWS_REASON or pid not in last_reason:
            continue
        j = last_reason[pid]
        reason = items[j][2]
        implied = book.follows(reason).get(field)
        if implied is None or implied == value:
            continue
        out.setdefault(i, []).append(
            f"{field} «{value}» противоречит reason «{reason}» (corrections[{j}]): у этой "
            f"причины {field} «{implied}»; не присылайте {field} — он последует за причиной"
        )
        out.setdefault(j, []).append(
            f"reason «{reason}» противоречит {field} «{value}» (corrections[{i}]): у этой "
            f"причины {field} «{implied}»"
        )
    return out
