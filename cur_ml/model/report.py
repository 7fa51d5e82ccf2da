"""The human evaluation report: confusion matrices (PNG), per-class tables, worst confusions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cur_ml.model.classifier import HEADS
from cur_ml.model.evaluate import per_class_table, top_confusions

__all__ = ["write_report"]

_MAX_MATRIX_LABELS = 25  # larger heads show their most frequent labels only


def _confusion_png(side: pd.DataFrame, head: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no screen on servers
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    labels = side[head].value_counts().index[:_MAX_MATRIX_LABELS].tolist()
    mask = side[head].isin(labels) & side[f"{head}_pred"].isin(labels)
    matrix = confusion_matrix(
        side.loc[mask, head], side.loc[mask, f"{head}_pred"], labels=labels, normalize="true"
    )
    size = max(5.0, 0.35 * len(labels) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    short = [lab if len(lab) <= 40 else lab[:38] + "…" for lab in labels]
    ax.set_xticks(range(len(labels)), short, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), short, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{head}: confusion (row-normalised, top {len(labels)} labels)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(side: pd.DataFrame, metrics: dict, directory: Path) -> Path:
    """Write report.md, metrics.json and one confusion PNG per head into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(
        json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    lines = [
        "# Evaluation report",
        "",
        f"Appeals: {metrics['n']}",
        "",
        "| head | accuracy | macro-F1 | ECE |",
        "| --- | --- | --- | --- |",
    ]
    for head in HEADS:
        m = metrics[head]
        lines.append(f"| {head} | {m['accuracy']} | {m['macro_f1']} | {m['ece']} |")
    lines += [
        "",
        f"Recall of urgency `high`: {metrics['urgency']['recall_high']}",
        f"needs_review rate: {metrics['needs_review']['rate']}",
        "",
    ]
    for head in HEADS:
        _confusion_png(side, head, directory / f"confusion_{head}.png")
        lines += [
            f"## {head}",
            "",
            f"![confusion](confusion_{head}.png)",
            "",
            "### Reliability (confidence bin → accuracy)",
            "",
            pd.DataFrame(metrics[head]["reliability"]).to_markdown(index=False),
            "",
            "### Worst confusions",
            "",
            top_confusions(side, head).to_markdown(index=False),
            "",
            "### Per class",
            "",
            per_class_table(side, head).to_markdown(index=False),
            "",
        ]
    path = directory / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
