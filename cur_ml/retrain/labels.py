"""Corrected labels: apply correction events to labelled appeals (the latest event of a field wins).

A corrected `reason` also fixes `category`, `urgency` and `deadline_days`, which follow from it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cur_ml.errors import DataError
from cur_ml.model.taxonomy import Taxonomy

__all__ = ["CORRECTABLE", "apply_corrections", "latest_corrections"]

CORRECTABLE = ("category", "reason", "urgency", "agency")


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
