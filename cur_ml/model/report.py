"""The human evaluation report: figures, per-class tables, worst confusions, per-row predictions.

A report directory holds `report.md`, `metrics.json`, `predictions.csv` (one row per
appeal, to slice errors by any column), `confusion_<head>.png` (every error counted: the
top labels plus «other»), `reliability.png` and `coverage.png`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cur_ml.model.classifier import HEADS
from cur_ml.model.evaluate import per_class_table, predictions_table, top_confusions
from cur_ml.model.plots import (
    MATRIX_LABELS,
    confusion_figure,
    coverage_figure,
    reliability_figure,
)

__all__ = ["PREDICTIONS_FILE", "markdown_table", "write_report"]

PREDICTIONS_FILE = "predictions.csv"
_EXAMPLE_CHARS = 160  # an example text in a table is a hint, not the whole appeal


def _cell(value: object) -> object:
    """A table cell that cannot break a markdown row: no newlines, `|` escaped."""
    if not isinstance(value, str):
        return value
    flat = " ".join(value.split())  # newlines and tabs of citizens' texts become spaces
    if len(flat) > _EXAMPLE_CHARS:
        flat = flat[: _EXAMPLE_CHARS - 1] + "…"
    return flat.replace("\\", "\\\\").replace("|", "\\|")


def markdown_table(frame: pd.DataFrame) -> str:
    """`frame` as a GitHub markdown table whose text cells are safe to put in a row."""
    if frame.empty:
        return "_none_"
    safe = frame.map(_cell)
    safe.columns = [_cell(str(c)) for c in frame.columns]
    return safe.to_markdown(index=False)


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=110)


def write_report(side: pd.DataFrame, metrics: dict, directory: Path) -> Path:
    """Write report.md, metrics.json, predictions.csv and the figures into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(
        json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    predictions_table(side).to_csv(directory / PREDICTIONS_FILE, index=False)
    _save(reliability_figure(side), directory / "reliability.png")
    _save(coverage_figure(side), directory / "coverage.png")
    review = metrics["needs_review"]
    lines = [
        "# Evaluation report",
        "",
        f"Appeals: {metrics['n']}. Every appeal with its truth, prediction and confidences: "
        f"[{PREDICTIONS_FILE}]({PREDICTIONS_FILE}).",
        "",
        "| head | accuracy | macro-F1 | ECE | accuracy without review |",
        "| --- | --- | --- | --- | --- |",
    ]
    for head in HEADS:
        m = metrics[head]
        routed = review["accuracy_without_review"][head]
        lines.append(f"| {head} | {m['accuracy']} | {m['macro_f1']} | {m['ece']} | {routed} |")
    lines += [
        "",
        f"Recall of urgency `high`: {metrics['urgency']['recall_high']} "
        f"(precision {metrics['urgency']['precision_high']}).",
        f"needs_review rate: {review['rate']}.",
        "",
        "![reliability](reliability.png) ![coverage](coverage.png)",
        "",
        f"Confusion matrices show the {MATRIX_LABELS} most frequent true labels; every other "
        "label is counted in the «other» row (as truth) or column (as prediction), so each "
        "matrix sums to the number of appeals. «other» × «other» holds right and wrong "
        "answers among the rarer labels alike; `predictions.csv` tells them apart.",
        "",
    ]
    for head in HEADS:
        _save(confusion_figure(side, head), directory / f"confusion_{head}.png")
        lines += [
            f"## {head}",
            "",
            f"![confusion](confusion_{head}.png)",
            "",
            "### Reliability (confidence bin → accuracy)",
            "",
            markdown_table(pd.DataFrame(metrics[head]["reliability"])),
            "",
            "### Worst confusions",
            "",
            markdown_table(top_confusions(side, head)),
            "",
            "### Per class",
            "",
            markdown_table(per_class_table(side, head)),
            "",
        ]
    path = directory / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
