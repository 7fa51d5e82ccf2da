"""The appeal's text as HTML with the words that drove each decision marked.

Explanations are character offsets into the original text; everything between and
inside them is escaped, so the text can hold any markup without harm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from markupsafe import Markup, escape

__all__ = ["SpanGroup", "highlight", "span_groups"]


@dataclass(frozen=True)
class SpanGroup:
    """Heads that share the same words (category, reason and urgency usually do)."""

    css: str
    heads: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]


def _spans(items: Any, length: int) -> tuple[tuple[int, int], ...]:
    """Valid (start, end) pairs within the text, sorted; anything malformed is dropped."""
    out = set()
    for item in items if isinstance(items, Sequence) else ():
        if not isinstance(item, Mapping):
            continue
        start, end = item.get("start"), item.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= length:
            out.add((start, end))
    return tuple(sorted(out))


def span_groups(
    explanation: Mapping[str, Any] | None, text: str, heads: Sequence[str]
) -> list[SpanGroup]:
    """Group `heads` by identical word spans; one CSS class (`hl-1`, `hl-2`...) per group."""
    by_spans: dict[tuple[tuple[int, int], ...], list[str]] = {}
    for head in heads:
        spans = _spans((explanation or {}).get(head), len(text))
        if spans:
            by_spans.setdefault(spans, []).append(head)
    return [
        SpanGroup(f"hl-{i}", tuple(group), spans)
        for i, (spans, group) in enumerate(by_spans.items(), start=1)
    ]


def highlight(text: str, groups: Sequence[SpanGroup], titles: Mapping[str, str]) -> Markup:
    """`text` escaped, with `<mark>` around every span (overlaps carry every group's class)."""
    cuts = {0, len(text)}
    for group in groups:
        for start, end in group.spans:
            cuts.update((start, end))
    bounds = sorted(cuts)
    parts: list[str] = []
    for a, b in pairwise(bounds):
        piece = escape(text[a:b])
        covering = [g for g in groups if any(s <= a and b <= e for s, e in g.spans)]
        if not covering:
            parts.append(piece)
            continue
        css = " ".join(["hl", *(g.css for g in covering)])
        title = "; ".join(", ".join(titles.get(h, h) for h in g.heads) for g in covering)
        parts.append(f'<mark class="{css}" title="{escape(title)}">{piece}</mark>')
    return Markup("".join(parts))
