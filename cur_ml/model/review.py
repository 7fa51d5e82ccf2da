"""When a person must look: the rules behind `needs_review` and its reasons."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ReviewPolicy", "text_issues"]

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class ReviewPolicy:
    """Thresholds per head; a prediction below any of them goes to an operator."""

    min_confidence: tuple[tuple[str, float], ...] = (
        ("category", 0.6),
        ("reason", 0.45),
        ("urgency", 0.6),
        ("agency", 0.5),
    )
    min_margin: float = 0.1
    min_words: int = 2

    def head_issues(self, head: str, top1: float, top2: float) -> list[str]:
        issues = []
        if top1 < dict(self.min_confidence)[head]:
            issues.append(f"low_confidence:{head}")
        if top1 - top2 < self.min_margin:
            issues.append(f"small_margin:{head}")
        return issues


def text_issues(text: str, lemmas: str, min_words: int) -> list[str]:
    """Text-level reasons: too short to decide on, or not Russian."""
    issues = []
    letters = _LETTER.findall(text)
    if not letters or len(_CYRILLIC.findall(text)) < 0.5 * len(letters):
        issues.append("not_russian")
    if len(lemmas.split()) < min_words:
        issues.append("text_too_short")
    return issues
