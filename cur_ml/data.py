"""Reading appeal datasets: CSV, CSV.GZ and JSON Lines with the portal's columns.

Raw files are never edited; broken rows are counted and skipped, never guessed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cur_ml.errors import DataError

__all__ = [
    "INPUT_COLUMNS",
    "LABEL_COLUMNS",
    "Columns",
    "Dataset",
    "appeal_columns",
    "data_hash",
    "load_appeals",
    "records_to_frame",
    "take",
]

log = logging.getLogger(__name__)

#: Fields of an appeal that the model may read (CONTRACT section 1).
INPUT_COLUMNS = (
    "text",
    "created_at",
    "source",
    "district",
    "municipality",
    "address",
    "lat",
    "lon",
    "city_object",
)
#: Labels a training file must carry; `deadline_days` is optional.
LABEL_COLUMNS = ("category", "reason", "urgency", "agency")
URGENCIES = ("high", "medium", "low")


@dataclass
class Dataset:
    """Appeals read from one or more files, with what was skipped and why."""

    frame: pd.DataFrame
    paths: list[Path]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def labels(self) -> pd.DataFrame:
        return self.frame[list(LABEL_COLUMNS)]


def _read_one(path: Path) -> tuple[pd.DataFrame, int]:
    """Read one file; return the frame and the number of unparseable lines."""
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_dir():
        raise DataError(f"data path is a directory, expected a file: {path}")
    name = path.name.lower()
    try:
        if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            return _read_jsonl(path)
        if name.endswith((".csv", ".csv.gz")):
            bad: list[list[str]] = []
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                on_bad_lines=lambda row: bad.append(row),
                engine="python",
            )
            return frame, len(bad)
    except (UnicodeDecodeError, OSError, EOFError, csv.Error, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    raise DataError(f"unsupported file type {path.name!r}: use .csv, .csv.gz or .jsonl")


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, int]:
    opener = __import__("gzip").open if path.name.endswith(".gz") else open
    rows, bad = [], 0
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
    frame = pd.DataFrame(rows).astype(object)
    return frame.where(frame.notna(), ""), bad


def load_appeals(
    paths: Sequence[str | Path],
    *,
    split: str | None = None,
    require_labels: bool = True,
) -> Dataset:
    """Load appeals from files; keep rows of `split`; check columns and labels.

    Rows with an empty text or (when labels are required) a missing label are
    skipped and counted in `Dataset.skipped`.
    """
    if not paths:
        raise DataError("no data file given")
    frames, skipped = [], {"unparseable_rows": 0}
    for raw in paths:
        frame, bad = _read_one(Path(raw))
        skipped["unparseable_rows"] += bad
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    needed = ["text", *(LABEL_COLUMNS if require_labels else ())]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} in {', '.join(map(str, paths))}")
    if split is not None:
        if "split" not in frame.columns:
            raise DataError(f"--split {split!r} given but the data has no 'split' column")
        frame = frame[frame["split"].astype(str) == split]
        if frame.empty:
            raise DataError(f"no rows with split == {split!r}")
    frame = frame.copy()
    frame["text"] = frame["text"].astype(str)
    keep = frame["text"].str.strip() != ""
    skipped["empty_text"] = int((~keep).sum())
    if require_labels:
        labels = frame[list(LABEL_COLUMNS)].astype(str).apply(lambda s: s.str.strip())
        has_all = (labels != "").all(axis=1)
        skipped["missing_label"] = int((keep & ~has_all).sum())
        keep &= has_all
        bad_urgency = keep & ~labels["urgency"].isin(URGENCIES)
        skipped["bad_urgency"] = int(bad_urgency.sum())
        keep &= ~bad_urgency
    frame = frame[keep].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"no usable rows in {', '.join(map(str, paths))}")
    skipped = {k: v for k, v in skipped.items() if v}
    if skipped:
        log.warning("skipped rows: %s", skipped)
    return Dataset(frame=records_to_frame(frame), paths=[Path(p) for p in paths], skipped=skipped)


def records_to_frame(records: Iterable[dict] | pd.DataFrame) -> pd.DataFrame:
    """Coerce appeals to a frame with every input column present and typed.

    Strings stay strings ("" when missing); lat/lon become floats (NaN when
    missing or not a finite number). Other columns are kept untouched.
    """
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    frame = frame.copy()
    for col in INPUT_COLUMNS:
        if col in ("lat", "lon"):
            values = (
                pd.to_numeric(frame[col], errors="coerce")
                if col in frame
                else pd.Series(float("nan"), index=frame.index)
            )
            frame[col] = values.where(values.abs() < 1e6).astype(float)
        elif col not in frame:
            frame[col] = ""
        else:
            values = frame[col].astype(object)
            values = values.where(values.notna(), "").astype(str)
            # The text stays as written: explanations are offsets into it.
            frame[col] = values if col == "text" else values.str.strip()
    return frame


#: A batch of appeals as column → values (the prediction path avoids pandas' per-call cost).
Columns = dict[str, list]


def _as_str(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _as_coordinate(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number if abs(number) < 1e6 else math.nan


def appeal_columns(records: Iterable[dict] | pd.DataFrame) -> Columns:
    """Appeals as columns with every input field present and typed, plus `id`.

    Same coercion as `records_to_frame`: strings ("" when missing), lat/lon floats
    (NaN when missing, not a number or absurd).
    """
    if isinstance(records, pd.DataFrame):
        frame = records_to_frame(records)
        cols = {c: frame[c].tolist() for c in INPUT_COLUMNS}
        cols["id"] = frame["id"].tolist() if "id" in frame else [None] * len(frame)
        return cols
    rows = list(records)
    cols = {c: [_as_str(r.get(c)) for r in rows] for c in INPUT_COLUMNS if c not in ("lat", "lon")}
    cols["text"] = [
        r.get("text") if isinstance(r.get("text"), str) else _as_str(r.get("text")) for r in rows
    ]
    cols["lat"] = [_as_coordinate(r.get("lat")) for r in rows]
    cols["lon"] = [_as_coordinate(r.get("lon")) for r in rows]
    cols["id"] = [r.get("id") for r in rows]
    return cols


def take(columns: Columns, index: Sequence[int]) -> Columns:
    """The rows `index` of a column batch."""
    return {c: [values[i] for i in index] for c, values in columns.items()}


def data_hash(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """Stable sha256 of the rows a model was trained on (inputs and labels)."""
    cols = [c for c in (columns or (*INPUT_COLUMNS, *LABEL_COLUMNS)) if c in frame.columns]
    buf = io.StringIO()
    frame[cols].to_csv(buf, index=False)
    return hashlib.sha256(buf.getvalue().encode("utf-8")).hexdigest()
