"""Figures of a model on labelled appeals: accuracy, macro-F1, recall of `high`, calibration."""

from __future__ import annotations

import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    f1_score,
    precision_score,
    recall_score,
)

from cur_ml.model.calibration import reliability_table
from cur_ml.model.classifier import HEADS

__all__ = [
    "head_metrics",
    "per_class_table",
    "predictions_frame",
    "predictions_table",
    "top_confusions",
]

#: Input columns kept beside each prediction in `predictions.csv`, to slice errors by.
_SLICE_COLUMNS = ("created_at", "source", "district", "city_object")


def predictions_frame(predictions: list[dict], truth: pd.DataFrame) -> pd.DataFrame:
    """Truth and prediction side by side: `<head>`, `<head>_pred`, `<head>_conf`, `text`.

    Also `id` (when `truth` has one), `urgency_likeliest`, `needs_review` and
    `review_reasons` (joined by ";"), so one frame feeds metrics, reports and the CSV.
    """
    cols: dict = {}
    if "id" in truth.columns:
        cols["id"] = truth["id"].to_numpy()
    cols["text"] = truth["text"].to_numpy()
    for head in HEADS:
        cols[head] = truth[head].to_numpy()
        cols[f"{head}_pred"] = [p[head] for p in predictions]
        cols[f"{head}_conf"] = [p["confidence"][head] for p in predictions]
    # `urgency` is the decision at the operating point; this is the likeliest label.
    cols["urgency_likeliest"] = [p["alternatives"]["urgency"][0]["label"] for p in predictions]
    cols["needs_review"] = [bool(p["needs_review"]) for p in predictions]
    cols["review_reasons"] = [";".join(p.get("review_reasons") or ()) for p in predictions]
    side = pd.DataFrame(cols)
    for col in _SLICE_COLUMNS:
        if col in truth.columns:
            side[col] = truth[col].to_numpy()
    return side


def predictions_table(side: pd.DataFrame) -> pd.DataFrame:
    """One row per appeal for `predictions.csv`: id, text, truth / prediction / confidence per
    head, needs_review, review_reasons, and the input columns to slice by."""
    out = pd.DataFrame(index=side.index)
    out["id"] = side["id"] if "id" in side else side.index.astype(str)
    out["text"] = side["text"]
    for head in HEADS:
        out[f"{head}_true"] = side[head]
        out[f"{head}_pred"] = side[f"{head}_pred"]
        out[f"{head}_confidence"] = side[f"{head}_conf"]
        out[f"{head}_correct"] = side[head] == side[f"{head}_pred"]
    out["urgency_likeliest"] = side["urgency_likeliest"]
    out["needs_review"] = side["needs_review"]
    out["review_reasons"] = side["review_reasons"]
    for col in _SLICE_COLUMNS:
        if col in side:
            out[col] = side[col]
    return out.reset_index(drop=True)


def head_metrics(side: pd.DataFrame) -> dict:
    """The JSON `cur-ml evaluate` prints: per head accuracy and macro-F1 (+ recall of high)."""
    out: dict = {"n": len(side)}
    for head in HEADS:
        y, p = side[head].to_numpy(), side[f"{head}_pred"].to_numpy()
        correct = y == p
        rows, ece = reliability_table(side[f"{head}_conf"].to_numpy(), correct)
        out[head] = {
            "accuracy": round(float(accuracy_score(y, p)), 4),
            "macro_f1": round(float(f1_score(y, p, average="macro", zero_division=0)), 4),
            "ece": ece,
            "reliability": rows,
        }
        if head == "urgency":
            out[head].update(_high_scores(y, p))
            if "urgency_likeliest" in side:
                likeliest = side["urgency_likeliest"].to_numpy()
                out[head]["accuracy_likeliest"] = round(float(accuracy_score(y, likeliest)), 4)
    review = side["needs_review"].to_numpy(dtype=bool)
    out["needs_review"] = {
        "rate": round(float(review.mean()), 4),
        # What review buys: accuracy of the appeals let through without a person.
        "accuracy_without_review": {
            h: round(float((side[h] == side[f"{h}_pred"])[~review].mean()), 4)
            if (~review).any()
            else None
            for h in HEADS
        },
    }
    return out


def _high_scores(y, p) -> dict[str, float]:
    """Recall and precision of `high`: a missed acute appeal is the costly error."""
    kw = {"labels": ["high"], "average": "macro", "zero_division": 0}
    return {
        "recall_high": round(float(recall_score(y, p, **kw)), 4),
        "precision_high": round(float(precision_score(y, p, **kw)), 4),
    }


def top_confusions(side: pd.DataFrame, head: str, n: int = 10) -> pd.DataFrame:
    """The `n` most frequent (true, predicted) errors of one head, each with an example text."""
    wrong = side[side[head] != side[f"{head}_pred"]]
    if wrong.empty:
        return pd.DataFrame(columns=["true", "predicted", "count", "example"])
    grouped = wrong.groupby([head, f"{head}_pred"])
    table = grouped.size().rename("count").reset_index()
    table["example"] = grouped["text"].first().to_numpy()
    table = table.sort_values("count", ascending=False, kind="stable").head(n)
    return table.rename(columns={head: "true", f"{head}_pred": "predicted"})


def per_class_table(side: pd.DataFrame, head: str) -> pd.DataFrame:
    """Support, precision, recall and F1 of every label of one head (scikit-learn's report)."""
    y, p = side[head].astype(str).to_numpy(), side[f"{head}_pred"].astype(str).to_numpy()
    labels = sorted(set(y) | set(p))
    report = classification_report(y, p, labels=labels, output_dict=True, zero_division=0)
    rows = [
        {
            "label": label,
            "support": int(report[label]["support"]),
            "precision": round(report[label]["precision"], 3),
            "recall": round(report[label]["recall"], 3),
            "f1": round(report[label]["f1-score"], 3),
        }
        for label in labels
    ]
    return pd.DataFrame(rows).sort_values("support", ascending=False, kind="stable")
