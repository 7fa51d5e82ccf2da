"""Speed, size and memory of our model vs the baselines, on the real appeals.

One run prints one side-by-side table (ours, baseline, ours / baseline):

* preprocessing, appeals/s: our ``RussianPreprocessor`` vs spaCy's stock
  ``pymorphy3`` lemmatizer (``benchmarks/preprocess_speed.py``'s ``run``);
* batch prediction, appeals/s, all four heads: ``model.predict(frame)`` on the
  dev split in batches of 1,000 vs four fastText models (one per head, times
  summed, text normalisation included);
* single-appeal latency p50 / p99 in ms, in process (``model.predict([record])``);
* the serving-path issue's in-process targets (batch and single, with and without
  explanations, fresh-process start) beside its "today" figures, and the CPU time of
  each stage of a prediction (``_stages.py``) beside the profile the issue recorded;
* full training on ALL appeals (train + dev), single run, in a subprocess,
  with its peak RSS (goal: under 60 s);
* model size on disk, cold start (import + load + first prediction) and peak
  RSS of a fresh process that loads the model and predicts the dev split.

Throughputs and latencies are medians of ``--repeats`` runs (≥ 3); training is
one run. Trained models go to a temporary directory, never into the repo.

    .venv/bin/python benchmarks/speed.py [--data PATH] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    FASTTEXT_PARAMS,
    HEADS,
    ft_predict,
    ft_text,
    machine,
    resolve_data,
    table,
    train_fasttext,
)

BATCH = 1000


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_mb(path: Path, pattern: str = "*") -> float:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file()) / 1e6


def batches(items: Any, size: int = BATCH) -> list[Any]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ----------------------------------------------------------- subprocess work
def worker_train_ours(data: Path, out: Path) -> dict:
    from cur_ml.data import load_appeals
    from cur_ml.model.training import train_model

    start = time.perf_counter()
    dataset = load_appeals([data])  # every row: train + dev
    loaded = time.perf_counter()
    model = train_model(dataset, show_progress=False)
    trained = time.perf_counter()
    model.save(out)
    return {
        "rows": len(dataset.frame),
        "load_data_s": loaded - start,
        "train_s": trained - loaded,
        "save_s": time.perf_counter() - trained,
        "peak_rss_mb": peak_rss_mb(),
    }


def worker_train_fasttext(data: Path, out: Path) -> dict:
    from cur_ml.data import load_appeals

    frame = load_appeals([data]).frame
    texts = [ft_text(t) for t in frame["text"]]
    start = time.perf_counter()
    labels = {}
    for head in HEADS:
        model, labels[head] = train_fasttext(texts, frame[head].tolist(), out / f"tmp-{head}")
        model.save_model(str(out / f"{head}.bin"))
        shutil.rmtree(out / f"tmp-{head}", ignore_errors=True)
        del model
        gc.collect()
    (out / "labels.json").write_text(json.dumps(labels, ensure_ascii=False), "utf-8")
    return {
        "rows": len(frame),
        "train_s": time.perf_counter() - start,
        "peak_rss_mb": peak_rss_mb(),
    }


def worker_serve_ours(data: Path, model_dir: Path) -> dict:
    t0 = time.perf_counter()
    from cur_ml.data import load_appeals
    from cur_ml.model import load_model

    t1 = time.perf_counter()
    model = load_model(model_dir)
    t2 = time.perf_counter()
    dev = load_appeals([data], split="dev").frame
    t3 = time.perf_counter()
    model.predict(dev.iloc[:1])
    t4 = time.perf_counter()
    for part in batches(dev):
        model.predict(part)
    return {
        "import_s": t1 - t0,
        "load_s": t2 - t1,
        "first_predict_s": t4 - t3,
        "cold_start_s": (t2 - t0) + (t4 - t3),
        "predict_dev_s": time.perf_counter() - t4,
        "peak_rss_mb": peak_rss_mb(),
    }


def worker_serve_fasttext(data: Path, model_dir: Path) -> dict:
    t0 = time.perf_counter()
    import fasttext

    from cur_ml.data import load_appeals

    t1 = time.perf_counter()
    models = {h: fasttext.load_model(str(model_dir / f"{h}.bin")) for h in HEADS}
    t2 = time.perf_counter()
    dev = load_appeals([data], split="dev").frame
    texts = dev["text"].tolist()
    t3 = time.perf_counter()
    for m in models.values():
        ft_predict(m, [ft_text(texts[0])])
    t4 = time.perf_counter()
    for part in batches(texts):
        norm = [ft_text(t) for t in part]
        for m in models.values():
            ft_predict(m, norm)
    return {
        "import_s": t1 - t0,
        "load_s": t2 - t1,
        "first_predict_s": t4 - t3,
        "cold_start_s": (t2 - t0) + (t4 - t3),
        "predict_dev_s": time.perf_counter() - t4,
        "peak_rss_mb": peak_rss_mb(),
    }


WORKERS: dict[str, Callable[[Path, Path], dict]] = {
    "train-ours": worker_train_ours,
    "train-fasttext": worker_train_fasttext,
    "serve-ours": worker_serve_ours,
    "serve-fasttext": worker_serve_fasttext,
}


def in_subprocess(kind: str, data: Path, path: Path) -> dict:
    """Run a worker in a fresh interpreter; its last stdout line is its JSON result."""
    cmd = [sys.executable, __file__, "--worker", kind, "--data", str(data), "--path", str(path)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"worker {kind} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - start
    # Cross-check of the child's own figure: the largest child so far (KiB on Linux).
    result["children_max_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def median_runs(kind: str, data: Path, path: Path, repeats: int) -> dict:
    runs = [in_subprocess(kind, data, path) for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


# ------------------------------------------------------------ in-process work
def preprocessing(data: Path, limit: int, repeats: int) -> dict:
    """Ours (cold / warm caches) vs spaCy stock lemmatizer, via preprocess_speed.run."""
    try:
        import preprocess_speed

        rows = {r["name"]: r for r in preprocess_speed.run(data, limit=limit, repeats=repeats)}
        return {
            "source": "preprocess_speed.run",
            "ours_cold": rows["ours, cold caches"]["appeals_per_s"],
            "ours_warm": rows["ours, warm caches"]["appeals_per_s"],
            "stock": rows["spaCy stock pymorphy3 lemmatizer"]["appeals_per_s"],
            "texts": rows["ours, warm caches"]["texts"],
            "stock_texts": rows["spaCy stock pymorphy3 lemmatizer"]["texts"],
        }
    except (ImportError, AttributeError, TypeError, KeyError) as exc:
        log(f"preprocess_speed.run unusable ({exc!r}); timing a minimal version here")
        return _preprocessing_minimal(data, limit, repeats)


def _preprocessing_minimal(data: Path, limit: int, repeats: int) -> dict:
    import pandas as pd
    import spacy

    from cur_ml.text import RussianPreprocessor

    texts = pd.read_csv(data, usecols=["text"])["text"].fillna("").astype(str).tolist()
    prep = RussianPreprocessor().fit([])

    def rate(fn: Callable[[list[str]], object], items: list[str]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(items)
            times.append(time.perf_counter() - start)
        return len(items) / statistics.median(times)

    start = time.perf_counter()
    prep.transform(texts)
    cold = len(texts) / (time.perf_counter() - start)
    nlp = spacy.blank("ru")
    nlp.add_pipe("lemmatizer", config={"mode": "pymorphy3"})
    nlp.initialize()
    sample = texts[:limit]
    return {
        "source": "minimal (cold = one run)",
        "ours_cold": cold,
        "ours_warm": rate(prep.transform, texts),
        "stock": rate(lambda xs: [[t.lemma_ for t in d] for d in nlp.pipe(xs)], sample),
        "texts": len(texts),
        "stock_texts": len(sample),
    }


def timed_batches(predict: Callable[[Any], object], parts: list[Any], repeats: int) -> float:
    """Median seconds of predicting every part, after one warm-up part."""
    predict(parts[0])
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for part in parts:
            predict(part)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latencies_ms(predict_one: Callable[[Any], object], items: list[Any]) -> dict:
    import numpy as np

    for item in items[:50]:  # warm-up
        predict_one(item)
    out = []
    for item in items:
        start = time.perf_counter()
        predict_one(item)
        out.append((time.perf_counter() - start) * 1000)
    return {"p50": float(np.percentile(out, 50)), "p99": float(np.percentile(out, 99))}


def dev_records(dev: Any) -> list[dict]:
    """The dev appeals as the service receives them: JSON objects, absent fields absent."""
    from cur_ml.data import INPUT_COLUMNS

    cols = [c for c in ("id", *INPUT_COLUMNS) if c in dev.columns]
    return [{k: v for k, v in r.items() if v == v} for r in dev[cols].to_dict("records")]


def prediction_ours(model_dir: Path, dev: Any, n_single: int, repeats: int) -> dict:
    from cur_ml.model import load_model

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _stages import stage_shares

    model = load_model(model_dir)
    records = dev_records(dev)
    parts = batches(records)
    model.predict(records)  # every word of the dev split seen once: warm caches, as in service
    gc.collect()
    gc.freeze()  # as the service does after a load: the collector skips the model's objects
    out: dict[str, Any] = {"n_single": min(n_single, len(records))}
    for explain in (False, True):
        key = "explain" if explain else "plain"

        def predict(part: list[dict], explain: bool = explain) -> object:
            return model.predict(part, explain=explain)

        seconds = timed_batches(predict, parts, repeats)
        lat = latencies_ms(lambda r, e=explain: model.predict([r], explain=e), records[:n_single])
        out[key] = {
            "appeals_per_s": len(records) / seconds,
            "latency_ms": lat,
            "stages_s": stage_shares(predict, parts),
        }
    gc.unfreeze()
    # The table's first rows compare like with like: fastText has no explanations.
    out["appeals_per_s"], out["latency_ms"] = (
        out["plain"]["appeals_per_s"],
        out["plain"]["latency_ms"],
    )
    return out


def prediction_fasttext(model_dir: Path, dev: Any, n_single: int, repeats: int) -> dict:
    import fasttext

    models = [fasttext.load_model(str(model_dir / f"{h}.bin")) for h in HEADS]
    texts = dev["text"].tolist()

    def predict(part: list[str]) -> None:
        norm = [ft_text(t) for t in part]
        for m in models:
            ft_predict(m, norm)

    seconds = timed_batches(predict, batches(texts), repeats)
    lat = latencies_ms(lambda t: predict([t]), texts[:n_single])
    return {"appeals_per_s": len(texts) / seconds, "latency_ms": lat, "n_single": n_single}


# ------------------------------------------------------------------ report
def report(fig: dict) -> str:
    pre, po, pf = fig["preprocessing"], fig["predict_ours"], fig["predict_fasttext"]
    to, tf, so, sf = fig["train_ours"], fig["train_fasttext"], fig["serve_ours"], fig["serve_ft"]
    spacy_name = f"spaCy stock pymorphy3 ({pre['stock_texts']:,} texts)"
    rows: list[list[Any]] = []

    def add(name: str, ours: float, base: float, fmt: str, baseline: str) -> None:
        higher_better = "/s" in name
        ours_wins = ours > base if higher_better else ours < base
        rows.append(
            [
                name,
                format(ours, fmt),
                format(base, fmt),
                f"{ours / base:.3g}x",
                "ours" if ours_wins else "baseline",
                baseline,
            ]
        )

    add("preprocessing, appeals/s, warm caches", pre["ours_warm"], pre["stock"], ",.0f", spacy_name)
    add("preprocessing, appeals/s, cold caches", pre["ours_cold"], pre["stock"], ",.0f", spacy_name)
    ft4 = "fastText, 4 models (one per head)"
    add("batch predict, appeals/s, 4 heads", po["appeals_per_s"], pf["appeals_per_s"], ",.0f", ft4)
    for q in ("p50", "p99"):
        add(
            f"single appeal latency {q}, ms",
            po["latency_ms"][q],
            pf["latency_ms"][q],
            ".2f",
            ft4,
        )
    add(
        f"full training, s ({to['rows']:,} appeals)",
        to["train_s"],
        tf["train_s"],
        ".1f",
        f"{ft4}, {FASTTEXT_PARAMS['thread']} threads",
    )
    add("peak RSS of training, MB", to["peak_rss_mb"], tf["peak_rss_mb"], ",.0f", ft4)
    add("model size on disk, MB", fig["size_ours_mb"], fig["size_ft_mb"], ",.1f", "4 x .bin")
    add(
        "cold start: import+load+1st predict, s", so["cold_start_s"], sf["cold_start_s"], ".2f", ft4
    )
    add("  of which load, s", so["load_s"], sf["load_s"], ".2f", ft4)
    add("peak RSS, load + predict dev, MB", so["peak_rss_mb"], sf["peak_rss_mb"], ",.0f", ft4)
    head = ["", "ours", "baseline", "ours / baseline", "better", "baseline is"]
    goal = "met" if to["train_s"] < 60 else "NOT met"
    notes = (
        f"training goal < 60 s on all appeals: {goal} ({to['train_s']:.1f} s in train_model; "
        f"+{to['load_data_s']:.1f} s reading the CSV, +{to['save_s']:.1f} s saving)\n"
        f"model file: {fig['size_ours_mb']:.1f} MB · fresh process, ours: import "
        f"{so['import_s']:.2f} s, load {so['load_s']:.2f} s, first predict "
        f"{so['first_predict_s']:.2f} s (builds spaCy tokenizer + pymorphy3)\n"
        f"medians of {fig['repeats']} runs except training (one run); "
        f"latency over {po['n_single']:,} single appeals; dev batch of {fig['dev_rows']:,} "
        f"appeals in batches of {BATCH:,}; preprocessing on {pre['texts']:,} texts "
        f"({pre['source']})"
    )
    return table(head, rows) + "\n\n" + notes


#: The serving-path issue's "today" figures (same machine, model of all appeals).
ISSUE_TODAY = {
    "batch": "1,800-2,400",
    "batch_explain": "~1,100",
    "single": "4.6 / 8.5 ms",
    "single_explain": "4-5 ms p50",
    "cold": "4-6 s (service)",
}
#: Its profile of a 3,000-appeal batch before the work, by stage.
ISSUE_STAGES_BEFORE = {
    "answers (top-3, labels, review reasons)": "~55%",
    "preprocessing (normalise, tokenise, lemmatise)": "~30% (words not yet cached)",
    "linear heads (sparse x dense)": "small",
}


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def issue_table(fig: dict) -> str:
    """The serving-path issue's in-process targets: its figures, this run's, the goal."""
    po, pf, so = fig["predict_ours"], fig["predict_fasttext"], fig["serve_ours"]
    plain, expl = po["plain"], po["explain"]
    vs_ft = plain["appeals_per_s"] / pf["appeals_per_s"]
    lat, elat = plain["latency_ms"], expl["latency_ms"]
    rows = [
        [
            "batch predict, 4 heads, explain=false, appeals/s, one core",
            ISSUE_TODAY["batch"],
            f"{plain['appeals_per_s']:,.0f} ({vs_ft:.1f}x fastText)",
            ">= 12,000 and >= 3x fastText",
            _met(plain["appeals_per_s"] >= 12_000 and vs_ft >= 3),
        ],
        [
            "batch predict with explanations, appeals/s",
            ISSUE_TODAY["batch_explain"],
            f"{expl['appeals_per_s']:,.0f}",
            ">= 6,000",
            _met(expl["appeals_per_s"] >= 6_000),
        ],
        [
            "one appeal in-process, p50 / p99",
            ISSUE_TODAY["single"],
            f"{lat['p50']:.2f} / {lat['p99']:.2f} ms",
            "<= 0.8 / 2 ms",
            _met(lat["p50"] <= 0.8 and lat["p99"] <= 2),
        ],
        [
            "one appeal with explanations, p50 / p99",
            ISSUE_TODAY["single_explain"],
            f"{elat['p50']:.2f} / {elat['p99']:.2f} ms",
            "-",
            "-",
        ],
        [
            "fresh process: import + load + first predict",
            ISSUE_TODAY["cold"],
            f"{so['cold_start_s']:.2f} s (load {so['load_s']:.2f} s)",
            "<= 2.5 s to ready",
            _met(so["cold_start_s"] <= 2.5) + " (service: benchmarks/serve.py)",
        ],
    ]
    head = ["serving-path issue target", "issue's today", "this run", "target", ""]
    return table(head, rows)


def stage_table(fig: dict) -> str:
    """Where the time of a prediction goes now (CPU, by stage), beside the issue's profile."""
    po, n = fig["predict_ours"], fig["dev_rows"]
    plain, expl = po["plain"]["stages_s"], po["explain"]["stages_s"]
    names = [k for k in sorted(expl, key=lambda k: -expl[k]) if k != "total"]
    rows = []
    for name in names:
        cells = [name, ISSUE_STAGES_BEFORE.get(name, "-")]
        for spent in (plain, expl):
            seconds = spent.get(name, 0.0)
            share = seconds / spent["total"] * 100
            cells.append(f"{share:4.1f}%  {seconds / n * 1e6:6.1f} us" if seconds else "-")
        rows.append(cells)
    rows.append(["total", "", *(f"{s['total'] / n * 1e6:.1f} us/appeal" for s in (plain, expl))])
    head = ["stage", "before (issue)", "now, explain=false", "now, with explanations"]
    return (
        table(head, rows)
        + f"\nCPU time per stage over the dev split ({n:,} appeals, batches of {BATCH:,})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="appeals CSV (default: shared)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cheap measure (median)")
    parser.add_argument("--single", type=int, default=2000, help="appeals for the latency test")
    parser.add_argument(
        "--stock-limit", type=int, default=3000, help="texts for the slow spaCy stock lemmatizer"
    )
    parser.add_argument("--json", type=Path, default=None, help="also save the figures here")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data = resolve_data(args.data)

    if args.worker:
        print(json.dumps(WORKERS[args.worker](data, args.path)))
        return 0
    if args.repeats < 3:
        sys.exit("--repeats must be at least 3 (the table shows medians)")

    from cur_ml.data import load_appeals

    fig: dict[str, Any] = {"repeats": args.repeats, "machine_at_start": machine()}
    tmp = Path(tempfile.mkdtemp(prefix="cur-ml-speed-"))
    try:
        ours_dir, ft_dir = tmp / "ours", tmp / "fasttext"
        ft_dir.mkdir()
        log("training our model on all appeals (subprocess)")
        fig["train_ours"] = in_subprocess("train-ours", data, ours_dir)
        log(f"  {fig['train_ours']['train_s']:.1f} s")
        log("training 4 fastText models on all appeals (subprocess)")
        fig["train_fasttext"] = in_subprocess("train-fasttext", data, ft_dir)
        log(f"  {fig['train_fasttext']['train_s']:.1f} s")
        fig["size_ours_mb"] = dir_mb(ours_dir, "model.*")
        fig["size_ft_mb"] = dir_mb(ft_dir, "*.bin")

        log(f"fresh load + predict processes × {args.repeats}")
        fig["serve_ours"] = median_runs("serve-ours", data, ours_dir, args.repeats)
        fig["serve_ft"] = median_runs("serve-fasttext", data, ft_dir, args.repeats)

        dev = load_appeals([data], split="dev").frame
        fig["dev_rows"] = len(dev)
        log("in-process prediction: ours")
        fig["predict_ours"] = prediction_ours(ours_dir, dev, args.single, args.repeats)
        log("in-process prediction: fastText")
        fig["predict_fasttext"] = prediction_fasttext(ft_dir, dev, args.single, args.repeats)
        gc.collect()
        log("preprocessing: ours vs spaCy stock lemmatizer")
        fig["preprocessing"] = preprocessing(data, args.stock_limit, args.repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"speed · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine()}")
    print(f"at start: {fig['machine_at_start']}")
    print(f"data: {data}")
    print(report(fig))
    print()
    print(issue_table(fig))
    print()
    print(stage_table(fig))
    if args.json:
        fig.update(date=datetime.now(UTC).isoformat(timespec="seconds"), machine=machine())
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(fig, ensure_ascii=False, indent=2) + "\n", "utf-8")
        log(f"figures saved to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
