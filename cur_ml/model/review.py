"""When a person must look: the rules behind `needs_review` and its reasons."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ReviewPolicy", "text_issues"]

# What a social post may hold besides words: links, hashtags, @mentions.
_TAGS_AND_LINKS = re.compile(
    r"(?:https?://|www\.)\S+|\b[\w.-]+\.(?:ru|su|com|org|net|me|рф)(?:/\S*)?|[#@][\w.]+",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]{2,}")
# Cheap scans that say when the costly patterns above can match at all.
_MAYBE_TAGS = re.compile(r"[#@]|://|www\.|\.(?:ru|su|com|org|net|me|рф)", re.IGNORECASE)
_NOT_LETTERS = re.compile(r"[\W\d_]+")
_NOT_CYRILLIC = re.compile(r"[^а-яё]+", re.IGNORECASE)


@dataclass(frozen=True)
class ReviewPolicy:
    """Confidence thresholds per head; a prediction below any of them goes to an operator.

    A fitted model carries thresholds read off the coverage/accuracy curve of its
    calibration rows (`AppealClassifier.review_policy_`); these defaults serve
    models too small to have such rows.
    """

    min_confidence: tuple[tuple[str, float], ...] = (
        ("category", 0.6),
        ("reason", 0.45),
        ("urgency", 0.6),
        ("agency", 0.5),
    )
    min_margin: float = 0.1
    min_words: int = 2

    def threshold(self, head: str) -> float:
        return dict(self.min_confidence)[head]

    def head_issues(self, head: str, top1: float, top2: float) -> list[str]:
        issues = []
        if top1 < self.threshold(head):
            issues.append(f"low_confidence:{head}")
        if top1 - top2 < self.min_margin:
            issues.append(f"small_margin:{head}")
        return issues


def text_issues(text: str, n_words: int, min_words: int) -> list[str]:
    """Text-level reasons: nothing but tags and links, too short to decide on, or not Russian."""
    rest = _TAGS_AND_LINKS.sub(" ", text) if _MAYBE_TAGS.search(text) else text
    if rest != text and not _WORD.search(rest):
        return ["only_tags_or_links"]
    issues = []
    cyrillic = len(_NOT_CYRILLIC.sub("", rest))
    # Mostly Cyrillic characters already means mostly Cyrillic letters: skip the count.
    if 2 * cyrillic <= len(rest):
        letters = len(_NOT_LETTERS.sub("", rest))
        if not letters or cyrillic < 0.5 * letters:
            issues.append("not_russian")
    if n_words < min_words:
        issues.append("text_too_short")
    return issues
