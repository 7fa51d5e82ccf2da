"""Import correction history (appeal_id, at, field, old, new) against a labelled dataset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from cur_ml.errors import DataError
from cur_ml.retrain.labels import CORRECTABLE
from cur_ml.store.corrections import CorrectionIn, CorrectionRepository

__all__ = ["ImportSummary", "import_corrections"]

_COLUMNS = ("appeal_id", "at", "field", "old", "new")


@dataclass
class ImportSummary:
    read: int
    stored: int
    already_there: int
    unknown_appeals: int
    bad_rows: int


def _key(row: pd.Series) -> str:
    raw = "\x1f".join(str(row[c]) for c in ("appeal_id", "at", "field", "old", "new"))
    return "import:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def import_corrections(
    path: Path,
    known_ids: set[str],
    repo: CorrectionRepository,
    *,
    operator: str = "import",
    chunk: int = 2_000,
    show_progress: bool = True,
) -> ImportSummary:
    """Store every event whose appeal is in `known_ids`; re-importing stores nothing twice."""
    try:
        events = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in _COLUMNS if c not in events.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} in {path}")
    at = pd.to_datetime(events["at"], errors="coerce", utc=True)
    bad = at.isna() | ~events["field"].isin(CORRECTABLE) | (events["new"].str.strip() == "")
    unknown = ~bad & ~events["appeal_id"].isin(known_ids)
    usable = events[~bad & ~unknown].assign(_at=at[~bad & ~unknown])
    stored = dup = 0
    with tqdm(
        total=len(usable), desc="importing corrections", unit="event", disable=not show_progress
    ) as bar:
        for start in range(0, len(usable), chunk):
            part = usable.iloc[start : start + chunk]
            items = [
                CorrectionIn(
                    field=r["field"],
                    new_value=r["new"],
                    old_value=r["old"] or None,
                    operator=operator,
                    appeal_id=r["appeal_id"],
                    source="import",
                    idempotency_key=_key(r),
                    created_at=r["_at"].to_pydatetime(),
                )
                for _, r in part.iterrows()
            ]
            for _, created in repo.add_many(items):
                stored += created
                dup += not created
            bar.update(len(part))
    return ImportSummary(
        read=len(events),
        stored=stored,
        already_there=dup,
        unknown_appeals=int(unknown.sum()),
        bad_rows=int(bad.sum()),
    )
