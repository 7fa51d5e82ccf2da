"""The base data of a retraining: named explicitly, hashed, split into training and a recent
holdout, and matched against the stored corrections.

Nothing here trains; `loop.retrain` does, on what this module hands it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cur_ml.data import Dataset, load_appeals
from cur_ml.errors import RetrainRefusedError
from cur_ml.retrain.labels import CORRECTABLE

__all__ = [
    "BaseData",
    "changed_labels",
    "file_sha256",
    "load_base",
    "matching_events",
    "recent_holdout",
]

_WEEK = pd.Timedelta(days=7)


def file_sha256(paths: list[Path]) -> str:
    """sha256 of the files' bytes, in order (what a data scientist can recompute with
    `cat FILES | sha256sum`)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class BaseData:
    """The labelled appeals a retraining starts from (every row of the named files), which of
    them it may train on (`split`), and where they came from."""

    dataset: Dataset
    sha256: str
    split: str | None
    info: dict = field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        return self.dataset.frame

    def trainable(self) -> np.ndarray:
        """Rows of `split` (all rows without one): the holdout is cut from every row."""
        if self.split is None:
            return np.ones(len(self.frame), dtype=bool)
        return (self.frame["split"].astype(str) == self.split).to_numpy()

    def describe(self) -> dict:
        """What is recorded with the run: paths, file hash, rows, split."""
        return {
            "paths": [str(p) for p in self.dataset.paths],
            "sha256": self.sha256,
            "rows": len(self.frame),
            "split": self.split,
            "split_rows": int(self.trainable().sum()),
        }


def load_base(paths: list[Path], split: str | None = "train") -> BaseData:
    """Every row of the named base files; training keeps those of `split` (all rows when the
    files have no `split` column).

    No paths: refused — retraining silently on the bundled demo data trained demo models and
    promoted them over real ones.
    """
    if not paths:
        raise RetrainRefusedError(
            "no base data named: set CUR_ML_BASE_DATA or pass --base-data PATH (the appeals "
            "the corrections refer to; the bundled demo: --base-data datasets/demo/appeals.csv)"
        )
    paths = [Path(p) for p in paths]
    dataset = load_appeals(paths)
    if split is not None and "split" in dataset.frame.columns:
        if not (dataset.frame["split"].astype(str) == split).any():
            raise RetrainRefusedError(f"base data {paths[0]} has no rows of split {split!r}")
    else:
        split = None
    return BaseData(dataset, file_sha256(paths), split)


def recent_holdout(
    frame: pd.DataFrame, *, min_rows: int = 2_000, max_fraction: float = 0.2
) -> tuple[np.ndarray, dict]:
    """A mask of the newest whole weeks of `frame` (by `created_at`) holding at least
    `min(min_rows, max_fraction · rows)` appeals, and a description of it.

    Both models are judged on these rows and the challenger never trains on them. Weeks
    are counted back from the newest appeal; rows without a readable time stay in training.
    Without any time, the last rows in file order are held out.
    """
    target = min(min_rows, int(len(frame) * max_fraction))
    if target < 1:
        raise RetrainRefusedError(
            f"base data has {len(frame)} rows: too few to hold any out for the comparison"
        )
    times = (
        pd.to_datetime(frame["created_at"], errors="coerce", utc=True, format="ISO8601")
        if "created_at" in frame.columns
        else pd.Series(pd.NaT, index=frame.index)
    )
    if times.notna().sum() < target:
        mask = np.zeros(len(frame), dtype=bool)
        mask[-target:] = True
        return mask, {"rows": target, "by": "file order (no created_at)"}
    newest, oldest = times.max(), times.min()
    weeks = 1
    while True:
        since = newest - weeks * _WEEK
        mask = (times > since).to_numpy()
        if mask.sum() >= target or since < oldest:
            break
        weeks += 1
    return mask, {
        "rows": int(mask.sum()),
        "by": "created_at",
        "weeks": weeks,
        "since": since.isoformat(),
        "until": newest.isoformat(),
    }


def matching_events(events: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """The correction events (by `appeal_id`) that name an appeal of `frame`."""
    if events.empty or "id" not in frame.columns:
        return events.iloc[0:0]
    ids = set(frame["id"].astype(str))
    return events[events["appeal_id"].astype(str).isin(ids)]


def changed_labels(before: pd.DataFrame, after: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """Rows whose labels corrections really changed, and how many per field.

    A correction to the label a row already had changes nothing and weighs nothing; a
    corrected reason that moves category and urgency counts for those fields too.
    """
    per_field, any_changed = {}, np.zeros(len(before), dtype=bool)
    for name in CORRECTABLE:
        diff = before[name].astype(str).to_numpy() != after[name].astype(str).to_numpy()
        per_field[name] = int(diff.sum())
        any_changed |= diff
    return any_changed, per_field
