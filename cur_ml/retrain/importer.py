"""Import correction history: the portal's (appeal_id, at, field, old, new) against a labelled
dataset, or a whole store's as `cur-ml store export corrections` writes it (CSV or JSON Lines,
see `cur_ml.store.export`).

A file of the five columns is stored as before: each event by its appeal, recorded as
`source` `import` by `operator`, under a key made of its content. The export's further
columns, when a row has them, are kept as they are: the prediction corrected, who, the comment,
the source, the idempotency key, and label approvals (`kind` `label_approval`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session
from tqdm.auto import tqdm

from cur_ml.errors import DataError
from cur_ml.retrain.labels import CORRECTABLE
from cur_ml.store.corrections import CorrectionIn, CorrectionRepository
from cur_ml.store.export import CORRECTION, LABEL_APPROVAL, read_history
from cur_ml.store.label_approvals import LabelApprovalIn, insert_approvals
from cur_ml.store.predictions import PredictionRepository

__all__ = ["ImportSummary", "import_corrections"]

_COLUMNS = ("appeal_id", "at", "field", "old", "new")
#: Widths of the store's columns a file may fill (PostgreSQL refuses longer text).
_WIDTH = {
    "appeal_id": 256,
    "old": 512,
    "new": 512,
    "prediction_id": 36,
    "operator": 128,
    "source": 16,
    "idempotency_key": 128,
    "region": 16,
}


@dataclass
class ImportSummary:
    read: int
    stored: int
    already_there: int
    unknown_appeals: int
    bad_rows: int
    #: Label approvals stored now (rows of `kind` `label_approval` not stored before).
    approvals_stored: int = 0
    #: Corrections of the file that name a prediction this store does not hold (kept as
    #: history; retraining uses them once the predictions are restored too).
    unknown_predictions: int = 0


def _key(row: pd.Series) -> str:
    """The key of an event that brings none: its content, as the file spelt it."""
    raw = "\x1f".join("" if row[c] is None else str(row[c]) for c in _COLUMNS)
    return "import:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def _column(events: pd.DataFrame, name: str) -> pd.Series:
    if name in events.columns:
        return events[name]
    return pd.Series([None] * len(events), index=events.index, dtype=object)


def _bad(events: pd.DataFrame, at: pd.Series) -> pd.Series:
    """Rows that cannot be stored: no time, a field no head has, no value, an unknown kind,
    a row that names neither an appeal nor a prediction, text wider than its column."""
    new = events["new"].fillna("").astype(str).str.strip()
    kind = events["kind"]
    bad = at.isna() | ~events["field"].isin(CORRECTABLE) | (new == "")
    bad |= ~kind.isin([CORRECTION, LABEL_APPROVAL])
    bad |= (kind == CORRECTION) & events["appeal_id"].isna() & events["prediction_id"].isna()
    for name, width in _WIDTH.items():
        bad |= events[name].fillna("").astype(str).str.len() > width
    return bad


def import_corrections(
    path: Path,
    known_ids: Collection[str] | None,
    repo: CorrectionRepository,
    *,
    operator: str = "import",
    chunk: int = 2_000,
    show_progress: bool = True,
) -> ImportSummary:
    """Store every event of `path` (re-importing stores nothing twice). An event with no
    prediction must name an appeal in `known_ids` (None: every appeal id is taken)."""
    events = read_history(path)
    missing = [c for c in _COLUMNS if c not in events.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} in {path}")
    extra = ("prediction_id", "operator", "comment", "source", "idempotency_key", "region")
    events = events.assign(
        **{c: _column(events, c) for c in extra},
        kind=_column(events, "kind").fillna(CORRECTION),
    )
    at = pd.to_datetime(events["at"], errors="coerce", utc=True)
    bad = _bad(events, at)
    by_appeal = events["prediction_id"].isna() & (events["kind"] == CORRECTION)
    if known_ids is None:
        unknown = pd.Series(False, index=events.index)
    else:
        unknown = ~bad & by_appeal & ~events["appeal_id"].isin(set(known_ids))
    usable = events[~bad & ~unknown].assign(_at=at[~bad & ~unknown])
    corrections = usable[usable["kind"] == CORRECTION]
    approvals = usable[usable["kind"] == LABEL_APPROVAL]
    stored = dup = 0
    with tqdm(
        total=len(usable), desc="importing corrections", unit="event", disable=not show_progress
    ) as bar:
        for start in range(0, len(corrections), chunk):
            part = corrections.iloc[start : start + chunk]
            items = [_correction(r, operator) for _, r in part.iterrows()]
            for _, created in repo.add_history(items):
                stored += created
                dup += not created
            bar.update(len(part))
        approved = _approve(repo, approvals)
        bar.update(len(approvals))
    named = corrections["prediction_id"].dropna().unique().tolist()
    held = PredictionRepository(repo.engine).existing(named) if named else set()
    return ImportSummary(
        read=len(events),
        stored=stored,
        already_there=dup,
        unknown_appeals=int(unknown.sum()),
        bad_rows=int(bad.sum()),
        approvals_stored=approved,
        unknown_predictions=int((~corrections["prediction_id"].dropna().isin(held)).sum()),
    )


def _correction(r: pd.Series, operator: str) -> CorrectionIn:
    return CorrectionIn(
        field=r["field"],
        new_value=r["new"],
        old_value=r["old"],
        operator=r["operator"] or operator,
        prediction_id=r["prediction_id"],
        appeal_id=r["appeal_id"],
        comment=r["comment"],
        idempotency_key=r["idempotency_key"] or _key(r),
        source=r["source"] or "import",
        created_at=r["_at"].to_pydatetime(),
        region=r["region"],
    )


def _approve(repo: CorrectionRepository, approvals: pd.DataFrame) -> int:
    """Store the label approvals of the file (one transaction); how many are new."""
    if approvals.empty:
        return 0
    items = [
        LabelApprovalIn(
            field=r["field"],
            label=r["new"],
            approved_by=r["operator"] or "import",
            comment=r["comment"],
            prediction_id=r["prediction_id"],
            correction_key=r["idempotency_key"],
            created_at=r["_at"].to_pydatetime(),
        )
        for _, r in approvals.iterrows()
    ]
    with Session(repo.engine) as session, session.begin():
        return sum(created for _, created in insert_approvals(session, items))
