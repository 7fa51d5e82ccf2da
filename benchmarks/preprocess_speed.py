"""Speed of Russian preprocessing on the real appeals, one core.

Compares, in appeals per second (median of ``--repeats`` runs each; by wall clock and
by the process's CPU time, which neighbours on a shared machine do not inflate):

* ours, cold: ``RussianPreprocessor.transform`` on all texts with empty caches (a new
  tokenizer and lemmatizer per run; building them is reported as start-up, not timed);
* ours, warm: the same, run again with the caches filled; and one call per text on the
  first ``--limit`` texts (the API's path: a single appeal is a batch of one);
* spaCy's stock lemmatizer (``mode="pymorphy3"``) on the first ``--limit`` texts;
* a plain regex tokenizer + ``lru_cache``-d pymorphy3, cold and warm, for reference.

    .venv/bin/python benchmarks/preprocess_speed.py [--data PATH] [--limit 3000] [--repeats 3]

``run()`` returns the rows as dicts, for other benchmark scripts.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "spb" / "appeals.csv.gz"
_WORD = re.compile(r"[а-яёa-z]+")

Run = Callable[[Sequence[str]], object]


def load_texts(path: Path) -> list[str]:
    """The ``text`` column as a list of str (missing values as "")."""
    import pandas as pd

    return pd.read_csv(path, usecols=["text"])["text"].fillna("").astype(str).tolist()


def _timed(fn: Run, texts: Sequence[str]) -> tuple[float, float]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn(texts)
    return time.perf_counter() - wall, time.process_time() - cpu


def _row(name: str, n: int, times: list[tuple[float, float]]) -> dict[str, Any]:
    wall = statistics.median(t[0] for t in times)
    cpu = statistics.median(t[1] for t in times)
    return {
        "name": name,
        "texts": n,
        "repeats": len(times),
        "seconds": wall,
        "appeals_per_s": n / wall,
        "cpu_appeals_per_s": n / cpu,
    }


def _fresh_ours() -> tuple[Run, float]:
    """A preprocessor whose process-wide engine is new (empty caches), and its build time."""
    from cur_ml.text import RussianPreprocessor
    from cur_ml.text.engine import get_engine
    from cur_ml.text.lemmatize import get_lemmatizer

    get_engine.cache_clear()
    get_lemmatizer.cache_clear()
    start = time.perf_counter()
    engine = get_engine()
    engine.tokenizer  # noqa: B018 - build the heavy objects outside the timing
    engine.lemmatizer.morph  # noqa: B018
    prep = RussianPreprocessor().fit([])
    return prep.transform, time.perf_counter() - start


def _stock_spacy() -> Run:
    import spacy

    nlp = spacy.blank("ru")
    nlp.add_pipe("lemmatizer", config={"mode": "pymorphy3"})
    nlp.initialize()

    def lemmatize(texts: Sequence[str]) -> list[str]:
        return [" ".join(t.lemma_ for t in doc) for doc in nlp.pipe(texts)]

    return lemmatize


def _regex_reference(morph: Any) -> Run:
    @lru_cache(maxsize=1_000_000)
    def lemma(word: str) -> str:
        return morph.parse(word)[0].normal_form.replace("ё", "е")

    def lemmatize(texts: Sequence[str]) -> list[str]:
        return [" ".join(map(lemma, _WORD.findall(t.lower()))) for t in texts]

    return lemmatize


def _repeat(
    make: Callable[[], Run], texts: Sequence[str], repeats: int
) -> list[tuple[float, float]]:
    """Time ``make()`` (a fresh contender each run: cold) ``repeats`` times."""
    return [_timed(make(), texts) for _ in range(repeats)]


def run(data_path: Path | str = DEFAULT_DATA, limit: int = 3000, repeats: int = 3) -> list[dict]:
    """Time every contender on the appeals at ``data_path``; one dict per table row."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from cur_ml.text.lemmatize import load_morph_analyzer

    texts = load_texts(Path(data_path))
    sample = texts[:limit]

    startup: list[float] = []

    def fresh_ours() -> Run:
        transform, seconds = _fresh_ours()
        startup.append(seconds)
        return transform

    cold = _repeat(fresh_ours, texts, repeats)
    warm_ours = fresh_ours()
    warm_ours(texts)

    def one_by_one(batch: Sequence[str]) -> list[str]:
        return [warm_ours([text])[0] for text in batch]

    stock = _stock_spacy()
    morph = load_morph_analyzer()
    warm_ref = _regex_reference(morph)
    warm_ref(texts)

    rows = [
        _row("ours, cold caches", len(texts), cold),
        _row("ours, warm caches", len(texts), _repeat(lambda: warm_ours, texts, repeats)),
        _row(
            "ours, warm, one call per text",
            len(sample),
            _repeat(lambda: one_by_one, sample, repeats),
        ),
        _row(
            "spaCy stock pymorphy3 lemmatizer", len(sample), _repeat(lambda: stock, sample, repeats)
        ),
        _row(
            "regex + lru_cache pymorphy3, cold",
            len(texts),
            _repeat(lambda: _regex_reference(morph), texts, repeats),
        ),
        _row(
            "regex + lru_cache pymorphy3, warm",
            len(texts),
            _repeat(lambda: warm_ref, texts, repeats),
        ),
    ]
    # ratios use CPU time: on a shared machine wall time also counts the neighbours
    base = next(r for r in rows if r["name"].startswith("spaCy stock"))["cpu_appeals_per_s"]
    for row in rows:
        row["vs_stock"] = row["cpu_appeals_per_s"] / base
    rows[0]["startup_s"] = statistics.median(startup)
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a plain-text table ("x stock" compares CPU-time rates)."""
    head = (
        f"{'':36} {'texts':>7} {'median s':>9} {'appeals/s':>10} {'cpu-time/s':>10} {'x stock':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['name']:36} {r['texts']:>7,} {r['seconds']:>9.3f} {r['appeals_per_s']:>10,.0f}"
            f" {r['cpu_appeals_per_s']:>10,.0f} {r['vs_stock']:>7.1f}x"
        )
    return "\n".join(lines)


def _environment() -> str:
    import pymorphy3
    import pymorphy3.dawg
    import spacy

    dawg = (
        "C extension" if pymorphy3.dawg.EXTENSION_AVAILABLE else "pure Python (DAWG2 not installed)"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"python {sys.version.split()[0]}, spaCy {spacy.__version__}, "
        f"pymorphy3 {pymorphy3.__version__} with {dawg} DAWG; load average {load}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="appeals CSV (column text)")
    parser.add_argument(
        "--limit", type=int, default=3000, help="texts for the slow stock lemmatizer"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender (median)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        sys.exit(f"data file not found: {args.data} (pass --data PATH to the appeals CSV)")
    if args.repeats < 3:
        sys.exit("--repeats must be at least 3 (the table shows medians)")
    rows = run(args.data, limit=args.limit, repeats=args.repeats)
    print(_environment())
    print(format_table(rows))
    startup = rows[0]["startup_s"]
    print(f"start-up (spaCy tokenizer + pymorphy3 dictionaries), not timed: {startup:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
