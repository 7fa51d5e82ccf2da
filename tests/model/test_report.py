"""Reports keep every error, name labels uniquely, and give one CSV row per appeal."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from cur_ml.model.classifier import HEADS
from cur_ml.model.plots import OTHER, confusion_counts, short_labels
from cur_ml.model.report import PREDICTIONS_FILE, markdown_table
from cur_ml.model.training import evaluate_model
from cur_ml.tracking_fields import metric_keys, split_figures


def _long_tail(seed: int = 0, n: int = 600, labels: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Zipf-like truth over `labels` labels; a third of the answers wrong, often into the tail."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, labels + 1)
    names = np.array([f"label {i:02d}" for i in range(labels)])
    truth = rng.choice(names, size=n, p=weights / weights.sum())
    wrong = rng.random(n) < 0.33
    predicted = np.where(wrong, rng.choice(names, size=n), truth)
    return truth, predicted


def test_the_matrix_keeps_every_appeal_and_every_error():
    truth, predicted = _long_tail()
    counts, labels = confusion_counts(truth, predicted, top=10)
    assert labels[-1] == OTHER and len(labels) == 11
    assert counts.sum() == len(truth)  # nothing dropped
    top = set(labels[:-1])
    assert counts[-1].sum() == (~np.isin(truth, list(top))).sum()  # true tail → «other» row
    assert counts[:, -1].sum() == (~np.isin(predicted, list(top))).sum()  # predicted tail
    # Every error between two top labels is where it belongs; the rest touch «other».
    in_top = np.isin(truth, list(top)) & np.isin(predicted, list(top))
    off_diagonal_top = counts[:-1, :-1].sum() - np.trace(counts[:-1, :-1])
    assert off_diagonal_top == (in_top & (truth != predicted)).sum()
    # The top labels are the most frequent true ones.
    frequent = pd.Series(truth).value_counts().index[:10]
    assert set(frequent) == top


def test_no_other_row_when_every_label_fits():
    counts, labels = confusion_counts(["a", "b", "b", "c"], ["a", "c", "b", "c"], top=25)
    assert OTHER not in labels and sorted(labels) == ["a", "b", "c"]
    assert counts.sum() == 4 and np.trace(counts) == 3


def test_a_label_spelt_like_the_sentinel_keeps_its_own_row():
    truth = [OTHER] * 5 + ["a"] * 4 + ["b", "c"]
    counts, labels = confusion_counts(truth, truth, top=2)
    assert labels[:2] == [OTHER, "a"] and labels[2] != OTHER and labels[2].startswith(OTHER)
    assert counts.sum() == len(truth)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["Ямы на дороге", "Ямы на дорогах"], ["Ямы на доро… (1)", "Ямы на доро… (2)"]),
        (["короткая", "Ямы на дороге"], ["короткая", "Ямы на доро…"]),
        (["abc", "abc"], ["abc (1)", "abc (2)"]),
    ],
)
def test_short_labels_are_unique(labels, expected):
    assert short_labels(labels, width=12) == expected


def test_short_labels_of_real_reasons_never_collide(demo_model):
    reasons = demo_model.label_sets()["reason"]
    short = short_labels(reasons)
    assert len(set(short)) == len(reasons)


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_cells_cannot_break_a_row():
    frame = pd.DataFrame(
        {"true": ["a|b"], "count": [3], "example": ["Первая строка\nвторая | третья\r\nконец"]}
    )
    table = markdown_table(frame).splitlines()
    assert len(table) == 3  # header, rule, one row
    assert {_unescaped_pipes(line) for line in table} == {4}
    assert "Первая строка вторая \\| третья конец" in table[2]


@pytest.fixture(scope="module")
def report(demo_model, demo_dev, tmp_path_factory):
    frame = demo_dev.frame.copy()
    # Citizens' texts carry newlines and pipes; the report must survive both.
    frame.loc[frame.index[:20], "text"] = frame["text"].iloc[:20] + "\nЖду ответа | срочно"
    directory = tmp_path_factory.mktemp("report")
    metrics = evaluate_model(demo_model, frame, report_dir=directory)
    return frame, metrics, directory


def test_predictions_csv_has_one_row_per_appeal(report):
    frame, _, directory = report
    rows = pd.read_csv(directory / PREDICTIONS_FILE, dtype={"id": str})
    assert len(rows) == len(frame)
    assert list(rows["id"]) == list(frame["id"].astype(str))
    expected = {"id", "text", "needs_review", "review_reasons"}
    for head in HEADS:
        expected |= {f"{head}_true", f"{head}_pred", f"{head}_confidence"}
    assert expected <= set(rows.columns)
    assert (rows["reason_true"] == frame["reason"].to_numpy()).all()
    assert rows["reason_confidence"].between(0, 1).all()
    assert rows.loc[0, "text"].endswith("Жду ответа | срочно")  # CSV keeps the text whole


def test_report_files_and_tables(report):
    frame, metrics, directory = report
    names = {p.name for p in directory.iterdir()}
    assert {"report.md", "metrics.json", "reliability.png", "coverage.png"} <= names
    assert {f"confusion_{head}.png" for head in HEADS} <= names
    text = (directory / "report.md").read_text(encoding="utf-8")
    # Every table row of a table has as many cell borders as its header.
    tables: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    tables = [t for t in tables if t]
    assert len(tables) >= 1 + 3 * len(HEADS)
    for table in tables:
        assert len({_unescaped_pipes(line) for line in table}) == 1, table[0]
    assert "Жду ответа \\| срочно" in text
    # The reason head has more labels than the matrix shows: «other» holds the rest.
    side_counts, labels = confusion_counts(frame["reason"], _column(directory, "reason_pred"))
    assert labels[-1] == OTHER and side_counts.sum() == len(frame) == metrics["n"]


def _column(directory, name: str) -> pd.Series:
    return pd.read_csv(directory / PREDICTIONS_FILE)[name]


def test_metric_keys_are_head_first_and_carry_no_split(report):
    _, metrics, _ = report
    keys = metric_keys(metrics)
    assert {"reason_accuracy", "agency_macro_f1", "urgency_recall_high"} <= set(keys)
    assert {"needs_review_rate", "reason_accuracy_without_review", "n"} <= set(keys)
    assert all(k.split("_")[0] in (*HEADS, "needs", "n") for k in keys)
    assert not any(k.startswith(("dev_", "challenger_", "champion_")) for k in keys)
    assert keys["reason_accuracy"] == metrics["reason"]["accuracy"]


def test_split_figures_reads_every_shape_callers_pass():
    one = {"reason": {"accuracy": 0.8}}
    assert split_figures(one, "dev", None) == (one, "dev", None, {})
    assert split_figures({"held_out": one}, None, None) == (one, "held_out", None, {})
    other = {"reason": {"accuracy": 0.7}}
    both = {"challenger": one, "champion": other}
    expected = (one, "holdout", "challenger", {"champion": other})
    assert split_figures(both, "holdout", None) == expected
    assert split_figures(both, None, "champion")[0] == other
    assert split_figures({}, None, None) == ({}, None, None, {})
