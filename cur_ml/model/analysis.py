"""Error analysis for notebooks and reports: accuracy by group, two models side by side."""

from __future__ import annotations

import pandas as pd

from cur_ml.model.bundle import RoutingModel
from cur_ml.model.classifier import HEADS
from cur_ml.model.evaluate import head_metrics, predictions_frame

__all__ = ["accuracy_by", "compare_models", "side_by_side"]


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
    """Accuracy and macro-F1 per head of several models on the same appeals."""
    rows = []
    for name, model in models.items():
        metrics = head_metrics(predictions_frame(model.predict(frame), frame))
        row = {"model": name, "version": model.version}
        for head in HEADS:
            row[f"{head}_accuracy"] = metrics[head]["accuracy"]
            row[f"{head}_macro_f1"] = metrics[head]["macro_f1"]
        row["urgency_recall_high"] = metrics["urgency"]["recall_high"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")
