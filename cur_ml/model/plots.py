"""Figures of an evaluation: confusion matrices, reliability, review coverage, before / after.

Every function takes the side-by-side frame of `predictions_frame` (or plain figures) and
returns a matplotlib `Figure`; reports save them, notebooks show them. scikit-learn draws
what it can (`ConfusionMatrixDisplay`, `CalibrationDisplay`); matplotlib is imported on
first use, headless.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cur_ml.model.classifier import HEADS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OTHER",
    "before_after_figure",
    "confusion_counts",
    "confusion_figure",
    "coverage_curve",
    "coverage_figure",
    "reliability_figure",
    "short_labels",
]

#: Row and column of a confusion matrix that gathers every label outside the top N.
OTHER = "«other»"
MATRIX_LABELS = 25


def _axes(width: float, height: float):
    """A figure outside pyplot's global state: safe in worker threads, never shown on a screen."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


def confusion_counts(
    truth: Sequence[str], predicted: Sequence[str], top: int = MATRIX_LABELS
) -> tuple[np.ndarray, list[str]]:
    """Counts of (true, predicted) over the `top` most frequent true labels plus `OTHER`.

    Every appeal lands in exactly one cell: a label outside the top N (as truth or as
    prediction) is counted in the `OTHER` row or column, so the matrix sums to the number
    of appeals and no error disappears. `OTHER` is added only when there are more labels.
    """
    y = pd.Series(np.asarray(truth, dtype=object)).astype(str)
    p = pd.Series(np.asarray(predicted, dtype=object)).astype(str)
    # Most frequent as truth first; labels only ever predicted follow by how often.
    order = pd.concat([y.value_counts(), p.value_counts() * 1e-9], axis=1).fillna(0).sum(axis=1)
    ranked = order.sort_values(ascending=False, kind="stable").index.tolist()
    labels = ranked[:top]
    if len(ranked) > top:
        other = OTHER
        while other in labels:  # a real label spelt like the sentinel keeps its own row
            other += "'"
        keep = set(labels)
        y = y.where(y.isin(keep), other)
        p = p.where(p.isin(keep), other)
        labels = [*labels, other]
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y, p, labels=labels), labels


def short_labels(labels: Sequence[str], width: int = 40) -> list[str]:
    """Labels cut to `width` characters, numbered where cuts collide («Ямы на доро… (2)»)."""
    cut = [lab if len(lab) <= width else lab[: width - 1].rstrip() + "…" for lab in labels]
    seen: Counter[str] = Counter()
    total = Counter(cut)
    out = []
    for lab in cut:
        if total[lab] > 1:
            seen[lab] += 1
            lab = f"{lab} ({seen[lab]})"
        out.append(lab)
    return out


def confusion_figure(side: pd.DataFrame, head: str, top: int = MATRIX_LABELS) -> Figure:
    """Confusion matrix of one head: counts in the cells, colour = share of the true row."""
    from sklearn.metrics import ConfusionMatrixDisplay

    counts, labels = confusion_counts(side[head], side[f"{head}_pred"], top)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = max(5.0, 0.38 * len(labels) + 3.5)
    fig, ax = _axes(size + 1.2, size)
    display = ConfusionMatrixDisplay(share, display_labels=short_labels(labels))
    display.plot(
        ax=ax,
        cmap="Blues",
        include_values=False,
        xticks_rotation="vertical",
        colorbar=True,
        im_kw={"vmin": 0.0, "vmax": 1.0},
    )
    display.im_.colorbar.set_label("share of the true label's appeals")
    small = 6 if len(labels) > 12 else 8
    for (i, j), n in np.ndenumerate(counts):
        if n:  # empty cells stay blank so that the errors stand out
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(n), ha="center", va="center", fontsize=small, color=colour)
    ax.tick_params(labelsize=7)
    errors = int((side[head] != side[f"{head}_pred"]).sum())
    note = ""
    if labels[-1].startswith(OTHER):
        note = f"; {OTHER}: the {_tail(side, head, labels)} rarer labels"
    ax.set_title(f"{head}: {int(counts.sum())} appeals, {errors} errors{note}", fontsize=9)
    return fig


def _tail(side: pd.DataFrame, head: str, labels: list[str]) -> int:
    """How many labels the «other» row stands for."""
    everything = set(side[head].astype(str)) | set(side[f"{head}_pred"].astype(str))
    return len(everything - set(labels[:-1]))


def reliability_figure(side: pd.DataFrame, heads: Sequence[str] = HEADS, bins: int = 10) -> Figure:
    """Reliability diagram per head: top-1 confidence against how often it is right."""
    from sklearn.calibration import CalibrationDisplay

    fig, ax = _axes(5.5, 5)
    for head in heads:
        correct = (side[head] == side[f"{head}_pred"]).to_numpy(dtype=int)
        CalibrationDisplay.from_predictions(
            correct,
            side[f"{head}_conf"].to_numpy(dtype=float),
            n_bins=bins,
            pos_label=1,
            name=head,
            ax=ax,
            ref_line=head == heads[0],
        )
    ax.set_xlabel("confidence of the answer")
    ax.set_ylabel("share of answers that were right")
    ax.set_title(f"Reliability ({len(side)} appeals, {bins} bins)")
    return fig


def coverage_curve(side: pd.DataFrame, head: str) -> pd.DataFrame:
    """Routing only appeals at or above each confidence: share routed and their accuracy."""
    conf = side[f"{head}_conf"].to_numpy(dtype=float)
    correct = (side[head] == side[f"{head}_pred"]).to_numpy()
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(correct[order])
    n = np.arange(1, len(order) + 1)
    return pd.DataFrame(
        {"threshold": conf[order], "coverage": n / len(order), "accuracy": hits / n}
    )


def coverage_figure(side: pd.DataFrame, heads: Sequence[str] = HEADS) -> Figure:
    """Accuracy against coverage per head, with the point `needs_review` actually chose."""
    fig, ax = _axes(6, 4.5)
    routed = ~side["needs_review"].to_numpy(dtype=bool)
    for head in heads:
        curve = coverage_curve(side, head)
        (line,) = ax.plot(curve["coverage"], curve["accuracy"], label=head)
        if routed.any():
            right = (side[head] == side[f"{head}_pred"]).to_numpy()[routed].mean()
            ax.scatter([routed.mean()], [right], color=line.get_color(), zorder=3)
    ax.axvline(routed.mean(), color="grey", linestyle=":", label="share needs_review routes")
    ax.set_xlabel("share routed without a person (most confident first)")
    ax.set_ylabel("accuracy of the routed appeals")
    ax.set_title("Coverage / accuracy (dots: the appeals needs_review routes)")
    ax.legend(fontsize=8)
    return fig


def before_after_figure(
    before: dict,
    after: dict,
    metric: str = "accuracy",
    names: tuple[str, str] = ("before", "after"),
) -> Figure:
    """Bars per head of one figure (e.g. accuracy) for two evaluations of the same appeals."""
    figures = dict(zip(names, (before, after), strict=True))
    values = pd.DataFrame(
        {name: [m[h][metric] for h in HEADS] for name, m in figures.items()}, index=list(HEADS)
    )
    fig, ax = _axes(6.5, 4)
    values.plot.bar(ax=ax, rot=0, color=["#9ecae1", "#3182bd"])
    low = float(np.nanmin(values.to_numpy()))
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.3f", fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per head: {names[0]} → {names[1]}")
    return fig
