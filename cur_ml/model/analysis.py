"""Error analysis for notebooks and reports: accuracy by group, two models side by side."""

from __future__ import annotations

import pandas as pd

from cur_ml.model.bundle import RoutingModel
from cur_ml.model.classifier import HEADS
from cur_ml.model.evaluate import head_metrics, predictions_frame
from cur_ml.model.taxonomy import Taxonomy

__all__ = [
    "accuracy_by",
    "compare_models",
    "first_labels",
    "fixed_and_broken",
    "label_changes",
    "side_by_side",
]

#: The figures `compare_models` puts side by side, named as MLflow names them.
COMPARED = (*(f"{h}_{m}" for h in HEADS for m in ("accuracy", "macro_f1")), "urgency_recall_high")


def side_by_side(
    model: RoutingModel,
    frame: pd.DataFrame,
    keep: tuple[str, ...] = ("district", "city_object", "created_at"),
) -> pd.DataFrame:
    """Truth and prediction per appeal, with the columns in `keep` for grouping."""
    side = predictions_frame(model.predict(frame), frame)
    for col in keep:
        if col in frame.columns:
            side[col] = frame[col].to_numpy()
    return side


def accuracy_by(side: pd.DataFrame, head: str, by: str, min_count: int = 1) -> pd.DataFrame:
    """Accuracy of one head per value of `by` (e.g. agency per district), worst first."""
    correct = (side[head] == side[f"{head}_pred"]).rename("correct")
    table = (
        correct.groupby(side[by])
        .agg(["count", "mean"])
        .rename(columns={"count": "appeals", "mean": "accuracy"})
    )
    table = table[table["appeals"] >= min_count].sort_values("accuracy")
    return table.round({"accuracy": 4}).reset_index()


def compare_models(models: dict[str, RoutingModel], frame: pd.DataFrame) -> pd.DataFrame:
    """Accuracy, macro-F1 and recall of `high` of several models on the same appeals."""
    from cur_ml.tracking_fields import metric_keys

    rows = []
    for name, model in models.items():
        keys = metric_keys(head_metrics(predictions_frame(model.predict(frame), frame)))
        rows.append({"model": name, "version": model.version, **{k: keys[k] for k in COMPARED}})
    return pd.DataFrame(rows).set_index("model")


def fixed_and_broken(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per head, appeals the second model gets right and the first wrong, and the reverse.

    `before` and `after` are side-by-side frames of the same appeals (`side_by_side`); these
    discordant pairs are what a paired test (McNemar) weighs, not the two accuracies.
    """
    rows = []
    for head in HEADS:
        was = (before[head] == before[f"{head}_pred"]).to_numpy()
        now = (after[head] == after[f"{head}_pred"]).to_numpy()
        rows.append(
            {"head": head, "fixed": int((~was & now).sum()), "broken": int((was & ~now).sum())}
        )
    table = pd.DataFrame(rows).set_index("head")
    table["net"] = table["fixed"] - table["broken"]
    return table


def first_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """The portal's first labels: the citizen's menu reason and the first routing.

    `reason_initial` and `agency_initial` replace the final labels; category and urgency
    follow the reason as the final labels' taxonomy says (rows with a reason it does not
    know keep theirs). What the corrections replay starts from.
    """
    out = frame.copy()
    taxonomy = Taxonomy.from_labels(frame)
    for column in ("reason", "agency"):
        if f"{column}_initial" in frame.columns:
            given = frame[f"{column}_initial"].notna() & (frame[f"{column}_initial"] != "")
            out.loc[given, column] = frame.loc[given, f"{column}_initial"]
    known = out["reason"].isin(taxonomy.category_of)
    out.loc[known, "category"] = out.loc[known, "reason"].map(taxonomy.category_of)
    out.loc[known, "urgency"] = out.loc[known, "reason"].map(taxonomy.urgency_of)
    return out


def label_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per row and head, whether two labellings of the same rows differ (`.sum()` counts
    them per head, `.any(axis=1)` marks the rows a correction really changed)."""
    return pd.DataFrame(
        {head: before[head].to_numpy() != after[head].to_numpy() for head in HEADS},
        index=before.index,
    )
