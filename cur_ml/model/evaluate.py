"""Figures of a model on labelled appeals: accuracy, macro-F1, recall of `high`, calibration."""

from __future__ import annotations

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from cur_ml.model.calibration import reliability_table
from cur_ml.model.classifier import HEADS

__all__ = ["head_metrics", "per_class_table", "predictions_frame", "top_confusions"]


def predictions_frame(predictions: list[dict], truth: pd.DataFrame) -> pd.DataFrame:
    """Truth and prediction side by side: `<head>`, `<head>_pred`, `<head>_conf`, `text`."""
    cols = {"text": truth["text"].to_numpy()}
    for head in HEADS:
        cols[head] = truth[head].to_numpy()
        cols[f"{head}_pred"] = [p[head] for p in predictions]
        cols[f"{head}_conf"] = [p["confidence"][head] for p in predictions]
    # `urgency` is the decision at the operating point; this is the likeliest label.
    cols["urgency_likeliest"] = [p["alternatives"]["urgency"][0]["label"] for p in predictions]
    cols["needs_review"] = [p["needs_review"] for p in predictions]
    return pd.DataFrame(cols)


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
    review = side["needs_review"].to_numpy()
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
    wrong = side[side[head] != side[f"{head}_pred"]]
    if wrong.empty:
        return pd.DataFrame(columns=["true", "predicted", "count", "example"])
    grouped = wrong.groupby([head, f"{head}_pred"])
    table = grouped.size().rename("count").reset_index()
    table["example"] = grouped["text"].first().to_numpy()
    table = table.sort_values("count", ascending=False).head(n)
    return table.rename(columns={head: "true", f"{head}_pred": "predicted"})


def per_class_table(side: pd.DataFrame, head: str) -> pd.DataFrame:
    """Support, precision, recall and F1 of every true label of one head."""
    labels = sorted(set(side[head]) | set(side[f"{head}_pred"]))
    y, p = side[head].to_numpy(), side[f"{head}_pred"].to_numpy()
    rows = []
    for label in labels:
        tp = int(((y == label) & (p == label)).sum())
        support, predicted = int((y == label).sum()), int((p == label).sum())
        prec = tp / predicted if predicted else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        rows.append(
            {
                "label": label,
                "support": support,
                "precision": round(prec, 3),
                "recall": round(rec, 3),
                "f1": round(f1, 3),
            }
        )
    return pd.DataFrame(rows).sort_values("support", ascending=False)
