"""What the labels mean to each other, learned from the training labels.

A reason belongs to exactly one category and implies one deadline, hence one
urgency; many agencies are a role of a district ("СПб ГКУ ЖА {d} района"),
so the agency head predicts the role and the district fills it in.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["DISTRICT_SLOT", "Taxonomy", "district_genitive", "urgency_of_deadline"]

DISTRICT_SLOT = "{district}"
_ADJ_ENDING = re.compile(r"(ий|ый|ой)$")


def district_genitive(district: str) -> str:
    """'Невский' → 'Невского' (how agency names spell a district)."""
    return _ADJ_ENDING.sub("ого", district.strip())


def urgency_of_deadline(days: float) -> str:
    """The portal's rule: ≤6 days is high, 7-16 medium, longer low."""
    if days <= 6:
        return "high"
    return "medium" if days <= 16 else "low"


@dataclass
class Taxonomy:
    """Label sets and the rules tying them together."""

    category_of: dict[str, str]
    urgency_of: dict[str, str]
    deadline_of: dict[str, int]
    districts: list[str]
    agencies: list[str]
    roles: list[str] = field(default_factory=list)

    @classmethod
    def from_labels(cls, frame: pd.DataFrame) -> Taxonomy:
        """Learn the taxonomy from labelled rows (majority vote where rows disagree)."""

        def majority(key: str, value: str) -> dict[str, str]:
            counts: dict[str, Counter] = {}
            for k, v in zip(frame[key], frame[value], strict=True):
                counts.setdefault(k, Counter())[v] += 1
            return {k: c.most_common(1)[0][0] for k, c in counts.items()}

        category_of = majority("reason", "category")
        urgency_of = majority("reason", "urgency")
        deadline_of: dict[str, int] = {}
        if "deadline_days" in frame.columns:
            days = pd.to_numeric(frame["deadline_days"], errors="coerce")
            known = frame.assign(_days=days).dropna(subset=["_days"])
            for reason, value in majority_num(known, "reason", "_days").items():
                deadline_of[reason] = int(value)
        # Where no deadline is given, use the shortest deadline of the urgency class.
        fallback = {"high": 3, "medium": 10, "low": 30}
        for reason, urgency in urgency_of.items():
            deadline_of.setdefault(reason, fallback[urgency])
        districts = sorted({d for d in frame.get("district", []) if d})
        return cls(
            category_of=category_of,
            urgency_of=urgency_of,
            deadline_of=deadline_of,
            districts=districts,
            agencies=sorted(set(frame["agency"])),
        )

    @property
    def reasons(self) -> list[str]:
        return sorted(self.category_of)

    @property
    def categories(self) -> list[str]:
        return sorted(set(self.category_of.values()))

    def role_of(self, agency: str, district: str) -> str:
        """Replace the district inside an agency name by a slot, if it is there."""
        if district:
            gen = district_genitive(district)
            if re.search(rf"\b{re.escape(gen)}\b", agency):
                return re.sub(rf"\b{re.escape(gen)}\b", DISTRICT_SLOT, agency)
        return agency

    def agency_of(self, role: str, district: str) -> str | None:
        """Fill a role with a district; None when the role needs a district we lack."""
        if DISTRICT_SLOT not in role:
            return role
        if not district:
            return None
        return role.replace(DISTRICT_SLOT, district_genitive(district))


def majority_num(frame: pd.DataFrame, key: str, value: str) -> dict[str, float]:
    """Most common numeric value of `value` per `key`."""
    return frame.groupby(key)[value].agg(lambda s: s.value_counts().index[0]).to_dict()
