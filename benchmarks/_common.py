"""Shared bits of the benchmark scripts: data path, fastText helpers, table printing."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "spb" / "appeals.csv.gz"
HEADS = ("category", "reason", "urgency", "agency")

#: fastText settings of the baseline (README of the data: bigrams, char n-grams).
FASTTEXT_PARAMS: dict[str, Any] = {
    "epoch": 25,
    "lr": 0.5,
    "wordNgrams": 2,
    "minn": 2,
    "maxn": 5,
    "dim": 100,
    "loss": "softmax",
    "thread": 2,
    "verbose": 0,
}


def resolve_data(path: Path | None) -> Path:
    """The appeals file, or exit with a message saying how to get one."""
    data = (path or DEFAULT_DATA).expanduser()
    if not data.is_absolute():
        data = (Path.cwd() / data).resolve()
    if not data.is_file():
        sys.exit(
            f"data file not found: {data}\n"
            "These benchmarks need the St. Petersburg appeals (../shared/datasets/spb/ next to "
            "the repository); pass --data PATH to use another copy."
        )
    return data


def ft_text(text: str) -> str:
    """fastText input: lowercased, line breaks and runs of spaces collapsed to one space."""
    return " ".join(str(text).lower().split())


def ft_label(value: str) -> str:
    """A label as one fastText token (labels contain spaces)."""
    return "__label__" + "_".join(str(value).split())


def train_fasttext(texts: Sequence[str], labels: Sequence[str], workdir: Path) -> tuple[Any, dict]:
    """One supervised fastText model; returns it and the map token → original label."""
    import fasttext

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "train.txt"
    back: dict[str, str] = {}
    with path.open("w", encoding="utf-8") as fh:
        for text, label in zip(texts, labels, strict=True):
            token = ft_label(label)
            back[token] = label
            fh.write(f"{token} {text}\n")
    model = fasttext.train_supervised(str(path), **FASTTEXT_PARAMS)
    path.unlink()
    return model, back


def ft_predict(model: Any, texts: list[str]) -> list[str]:
    """Top label token of each (already normalised) text."""
    labels, _ = model.predict(texts, k=1)
    return [lab[0] if lab else "" for lab in labels]


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node() or 'host'}: {os.cpu_count()} cores, python "
        f"{platform.python_version()}, load average {load}"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> str:
    """A plain-text table; first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in header], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out = [title] if title else []
    out += [line(cells[0]), "-" * len(line(cells[0]))]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
