"""Corrected labels: apply correction events to labelled appeals (the latest event of a field wins).

A corrected `reason` also fixes `category`, `urgency` and `deadline_days`, which follow from it.
Only labels the base data knows, or an admin approved, are learned (`approved_events`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from cur_ml.errors import DataError
from cur_ml.model.taxonomy import Taxonomy

__all__ = [
    "CORRECTABLE",
    "apply_corrections",
    "approved_events",
    "known_labels",
    "latest_corrections",
]

CORRECTABLE = ("category", "reason", "urgency", "agency")
_URGENCIES = frozenset(("high", "medium", "low"))


def known_labels(*sources: pd.DataFrame | Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The labels of each correctable field in labelled frames (their columns) or label sets
    (`RoutingModel.label_sets()`, a manifest's `labels`), united."""
    out: dict[str, set[str]] = {f: set() for f in CORRECTABLE}
    for source in sources:
        for f in CORRECTABLE:
            if f in source:
                out[f].update(str(v) for v in source[f] if isinstance(v, str) and v)
    return out


def approved_events(
    events: pd.DataFrame,
    known: Mapping[str, Iterable[str]],
    approvals: Mapping[str, Iterable[str]],
    served: Mapping[str, Iterable[str]] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The correction events whose new label training may learn, and how many of each field
    were refused.

    A label is learnable when the base data knows it (`known`, see `known_labels`) or an admin
    approved it (`approvals`, `LabelApprovalRepository.by_field`); urgency is always one of
    high/medium/low. `served`: the label sets of the model operators corrected (the champion's
    `label_sets()`), allowed for their corrections but not for imported history (`source`
    `import`), which was never checked. Anything else — free text that reached the store
    before labels were checked, or history naming a label the base data never had — is
    refused, so that it cannot become a class of the next model.
    """
    missing = {"field", "new"} - set(events.columns)
    if missing:
        raise DataError(f"corrections lack column(s): {', '.join(sorted(missing))}")
    fields = events["field"].to_numpy()
    values = events["new"].astype(str)
    checked = (
        (events["source"] != "import").to_numpy()
        if served is not None and "source" in events.columns
        else np.zeros(len(events), dtype=bool)
    )
    ok = np.zeros(len(events), dtype=bool)
    for f in CORRECTABLE:
        allowed = set(known.get(f, ())) | set(approvals.get(f, ()))
        extra = set((served or {}).get(f, ())) - allowed
        if f == "urgency":
            allowed, extra = allowed & _URGENCIES, extra & _URGENCIES
        here = fields == f
        ok |= here & values.isin(allowed).to_numpy()
        ok |= here & checked & values.isin(extra).to_numpy()
    refused = {f: int(((fields == f) & ~ok).sum()) for f in CORRECTABLE}
    return events[ok], refused


def latest_corrections(events: pd.DataFrame, key: str = "appeal_id") -> pd.DataFrame:
    """One row per (key, field): the newest event (`at`), later rows winning ties."""
    missing = {key, "field", "new", "at"} - set(events.columns)
    if missing:
        raise DataError(f"corrections lack column(s): {', '.join(sorted(missing))}")
    bad = ~events["field"].isin(CORRECTABLE)
    if bad.any():
        raise DataError(f"unknown correction field(s): {sorted(set(events.loc[bad, 'field']))}")
    ordered = events.assign(_order=np.arange(len(events))).sort_values(["at", "_order"])
    return ordered.groupby([key, "field"], sort=False).tail(1).drop(columns="_order")


def apply_corrections(
    frame: pd.DataFrame, events: pd.DataFrame, *, key: str = "id", taxonomy: Taxonomy | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Labels of `frame` with the corrections applied, and a mask of the rows they changed.

    `events` has columns appeal_id, at, field, new; `frame[key]` holds the appeal ids.
    """
    taxonomy = taxonomy or Taxonomy.from_labels(frame)
    latest = latest_corrections(events.assign(appeal_id=events["appeal_id"].astype(str)))
    out = frame.copy()
    ids = out[key].astype(str)
    position = pd.Series(np.arange(len(out)), index=ids.to_numpy())
    position = position[~position.index.duplicated()]
    changed = np.zeros(len(out), dtype=bool)
    for field in ("reason", "agency", "category", "urgency"):  # reason first: it implies others
        sub = latest[(latest["field"] == field) & latest["appeal_id"].isin(position.index)]
        rows = position.loc[sub["appeal_id"]].to_numpy()
        out.loc[out.index[rows], field] = sub["new"].to_numpy()
        changed[rows] = True
        if field == "reason":
            for row, reason in zip(rows, sub["new"], strict=True):
                _follow_reason(out, out.index[row], reason, taxonomy)
    return out, changed


def _follow_reason(frame: pd.DataFrame, index: object, reason: str, tax: Taxonomy) -> None:
    if reason in tax.category_of:
        frame.at[index, "category"] = tax.category_of[reason]
        frame.at[index, "urgency"] = tax.urgency_of[reason]
        if "deadline_days" in frame.columns:
            frame.at[index, "deadline_days"] = str(tax.deadline_of[reason])
