"""What an MLflow run records, named once: metric keys, dataset inputs, the pyfunc's signature.

Every command (train, evaluate, retrain, quickstart) goes through `cur_ml.tracking.log_run`,
which names metrics with `metric_keys` only: `{head}_{metric}` (`reason_accuracy`,
`urgency_recall_high`, `agency_accuracy_without_review`), the same words as the JSON of
`cur-ml evaluate`. The split, the input profile and the model's role are tags, never parts
of a name, so runs of every kind line up in one MLflow table.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cur_ml.data import INPUT_COLUMNS, data_hash
from cur_ml.model.classifier import HEADS

__all__ = [
    "DEFAULT_PROFILE",
    "DataInput",
    "data_input",
    "input_example",
    "metric_keys",
    "pyfunc_signature",
    "split_figures",
]

#: An unprofiled frame carries every input field: what the `portal` profile keeps.
DEFAULT_PROFILE = "portal"
_NUMBER = (int, float)


def _number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def metric_keys(figures: dict[str, Any]) -> dict[str, float]:
    """One evaluation's figures (the JSON of `cur-ml evaluate`) → `{head}_{metric}` numbers.

    `{"reason": {"accuracy": .8}, "needs_review": {"rate": .2, "accuracy_without_review":
    {"reason": .9}}, "unseen_labels": {"agency": 3}, "n": 198}` →
    `reason_accuracy`, `needs_review_rate`, `reason_accuracy_without_review`,
    `agency_unseen_labels`, `n`. Tables (reliability bins) and text are left out.
    """
    out: dict[str, float] = {}
    for key, value in figures.items():
        if key == "needs_review" and isinstance(value, dict):
            if _number(value.get("rate")):
                out["needs_review_rate"] = float(value["rate"])
            for head, acc in (value.get("accuracy_without_review") or {}).items():
                if _number(acc):
                    out[f"{head}_accuracy_without_review"] = float(acc)
        elif key == "unseen_labels" and isinstance(value, dict):
            out.update({f"{h}_unseen_labels": float(n) for h, n in value.items() if _number(n)})
        elif isinstance(value, dict):
            out.update({f"{key}_{m}": float(v) for m, v in value.items() if _number(v)})
        elif _number(value):
            out[key] = float(value)
    return out


def split_figures(
    metrics: dict[str, Any], split: str | None, role: str | None
) -> tuple[dict[str, Any], str | None, str | None, dict[str, dict]]:
    """Normalise what callers pass as `metrics` to (figures, split, role, other roles' figures).

    Accepted: one evaluation (keys are heads); `{split: evaluation}` with one key, as a
    manifest keeps them; `{role: evaluation, ...}` with several, as retrain compares a
    challenger with a champion — the figures of `role` (default: the first key) are the
    run's own, the others are logged beside them as child runs tagged with their role.
    """
    if not metrics or any(head in metrics for head in HEADS):
        return metrics, split, role, {}
    nested = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    if len(nested) == 1:
        ((key, figures),) = nested.items()
        return figures, split or key, role, {}
    own = role if role in nested else next(iter(nested))
    others = {k: v for k, v in nested.items() if k != own and v}
    return nested[own], split, own, others


@dataclass(frozen=True)
class DataInput:
    """A data set a run read: recorded as an MLflow dataset input (metadata, not the rows)."""

    frame: pd.DataFrame
    source: str
    name: str
    sha256: str
    context: str  # "train", "dev", "held_out", ...


def data_input(
    frame: pd.DataFrame,
    paths: Sequence[Path | str],
    split: str | None,
    context: str,
    sha256: str | None = None,
    profile: str | None = None,
) -> DataInput:
    """The rows of `paths` (rows of `split`, as `profile` sends them) a run read.

    `sha256`: the hash of `frame` when the caller has it already (a manifest keeps it).
    """
    source = ", ".join(str(Path(p).resolve()) for p in paths)
    stem = Path(str(paths[0])).name.split(".")[0] if paths else "appeals"
    name = f"{stem}@{split}" if split else stem
    if profile and profile != DEFAULT_PROFILE:  # a profile's rows differ from the file's
        name += f"/{profile}"
    return DataInput(frame, source, name, sha256 or data_hash(frame), context)


def log_inputs(mlflow: Any, inputs: Sequence[DataInput]) -> list[Any]:
    """Log each input on the active run; returns the MLflow datasets (for linked metrics)."""
    logged = []
    for item in inputs:
        with warnings.catch_warnings():  # a local path "can be interpreted in multiple ways"
            warnings.simplefilter("ignore")
            dataset = mlflow.data.from_pandas(
                item.frame,
                source=item.source,
                name=item.name,
                digest=item.sha256[:32],  # MLflow keeps at most 36 characters
            )
        mlflow.log_input(
            dataset,
            context=item.context,
            tags={"sha256": item.sha256, "rows": str(len(item.frame))},
        )
        logged.append(dataset)
    return logged


def pyfunc_signature():
    """Input schema of the pyfunc: the appeal of CONTRACT section 1, `text` required.

    Unknown columns are dropped with a warning; a frame without `text` is refused
    (`mlflow models serve` answers 400). `id`, `lat` and `lon` accept any type because
    callers send them as numbers or strings, and the model reads either.
    """
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    loose = {"lat", "lon"}
    columns = [ColSpec("string", "text")]
    columns.append(ColSpec(AnyType(), "id", required=False))
    for name in (*INPUT_COLUMNS[1:], "region"):
        kind = AnyType() if name in loose else "string"
        columns.append(ColSpec(kind, name, required=False))
    return ModelSignature(inputs=Schema(columns))


def input_example() -> pd.DataFrame:
    """A portal appeal, as shown in MLflow's UI and used to check the logged model."""
    return pd.DataFrame(
        [
            {
                "id": "1",
                "text": "Третий день не работает лифт в подъезде, пожилые люди не могут выйти!",
                "created_at": "2024-05-14T09:30:00+03:00",
                "district": "Невский",
                "city_object": "Дом",
            }
        ]
    )
