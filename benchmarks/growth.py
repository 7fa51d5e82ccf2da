"""Growth: training time and peak memory of one worker against the number of rows.

Sizes (``--sizes``, default ``12000,24000,all,200000,1000000``):

* a number up to the train split's size: a nested random subset of the real train
  appeals (one permutation, fixed ``--seed``: the 12k rows are inside the 24k rows);
* ``all``: every train appeal (38,395 in the shared file);
* a larger number: rows drawn with replacement from the train appeals, every copy's
  text restyled by ``social_style_many`` with its own key (``{size}:{i}``), so the
  copies of one appeal are different posts, not duplicates; the other fields stay.

Each size is written to a CSV in a temporary directory, then trained in a fresh
interpreter the way ``cur-ml train`` does it (``load_appeals`` → ``train_model`` →
``save``). The child reports its own wall and CPU seconds (read, train and each
training stage, save) and ``ru_maxrss`` (training forks nothing: its threads are in
it); the parent samples the child's resident memory and CPU time every half second and
stops it at ``--max-minutes``, ``--max-cpu-minutes`` or ``--max-memory-gib``: such a
size is recorded as stopped, with how far it got. After training the child scores the
real dev split (outside the times and the peak memory above).

CPU seconds are the figure to read on a shared machine: other jobs stretch wall time,
not the work done. Ten minutes of a 2-core worker are 600 CPU-seconds on one core and
1,200 on both; the fits (CPU, wall, memory ≈ a·rows^b) give the rows each buys.

``--engine streaming`` trains ``cur_ml.model.streaming`` instead (``partial_fit`` heads
over hashed features, the CSV read in chunks), one pass unless ``--stream-epochs`` says
otherwise (a series of its own, "streaming ×3"). Results are merged into ``--json``
by (engine, size): a run of some sizes keeps the other sizes' earlier figures.

    nice -n 15 .venv/bin/python benchmarks/growth.py --sizes 12000,24000,all
    nice -n 15 .venv/bin/python benchmarks/growth.py --sizes 200000 --max-minutes 120 \
        --max-cpu-minutes 60
    nice -n 15 .venv/bin/python benchmarks/growth.py --engine streaming
    .venv/bin/python benchmarks/growth.py --table   # re-print, re-fit and re-plot the saved runs
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HEADS, ROOT, machine, resolve_data, table

DEFAULT_SIZES = "12000,24000,all,200000,1000000"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "growth.json"
DEFAULT_PLOT = ROOT / "docs" / "growth.png"
BUDGET_S = 600.0  # the ten minutes
SAMPLE_S = 0.5
GIB = 1024**3


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def cpu_s() -> float:
    """CPU seconds of this process so far, every thread (less hurt by a busy machine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


# ------------------------------------------------------------------ the rows
def worker_prepare(data: Path, size: str, seed: int, out: Path) -> dict:
    """Write the rows of one size to `out` (CSV); returns how they were made."""
    import numpy as np

    from cur_ml.data import load_appeals
    from cur_ml.text.social import social_style_many

    train = load_appeals([data], split="train").frame
    n_train = len(train)
    rows = n_train if size == "all" else int(size)
    if rows <= n_train:
        # One permutation for every size: the smaller subsets sit inside the larger ones.
        keep = np.sort(np.random.default_rng(seed).permutation(n_train)[:rows])
        frame, how = train.iloc[keep], "real" if rows < n_train else "real, all train"
    else:
        picks = np.sort(np.random.default_rng([seed, rows]).integers(0, n_train, rows))
        frame = train.iloc[picks].reset_index(drop=True)
        frame["id"] = [f"{a}-{i}" for i, a in enumerate(frame["id"])]
        frame["text"] = social_style_many(frame["text"].tolist(), seed=rows)
        how = "resampled, social style"
    frame.to_csv(out, index=False)
    return {
        "rows": len(frame),
        "how": how,
        "train_rows_available": n_train,
        "distinct_texts": int(frame["text"].nunique()),
    }


# ------------------------------------------------------------------ training
def _stage_clock(marks: list[tuple[str, float]]) -> None:
    """Record when each stage of `AppealClassifier.fit` starts (its progress callback)."""
    from cur_ml.model.classifier import AppealClassifier

    original = AppealClassifier.fit

    def fit(self: Any, frame: Any, sample_weight: Any = None, progress: Any = None) -> Any:
        def step(name: str) -> None:
            marks.append((name, time.perf_counter()))
            if progress is not None:
                progress(name)

        result = original(self, frame, sample_weight=sample_weight, progress=step)
        marks.append(("end", time.perf_counter()))
        return result

    AppealClassifier.fit = fit  # type: ignore[method-assign]


def _stages(marks: list[tuple[str, float]], started: float) -> dict[str, float]:
    """Seconds per stage from the start marks (the time before the first is "setup")."""
    names = ["setup", *(name for name, _ in marks[:-1])]
    times = [started, *(at for _, at in marks)]
    return {n: round(b - a, 2) for n, a, b in zip(names, times, times[1:], strict=False)}


def _dev_accuracy(predict: Any, data: Path) -> dict[str, float]:
    """Accuracy of each head on the real dev split (urgency: the likeliest label)."""
    from cur_ml.data import load_appeals

    dev = load_appeals([data], split="dev").frame
    got = predict(dev)
    return {h: round(float((got[h] == dev[h].to_numpy()).mean()), 4) for h in HEADS}


def worker_train_production(rows_csv: Path, out: Path, data: Path, epochs: int) -> dict:
    import numpy as np

    from cur_ml.data import load_appeals
    from cur_ml.model.training import train_model
    from cur_ml.settings import Settings

    marks: list[tuple[str, float]] = []
    _stage_clock(marks)
    start = time.perf_counter()
    dataset = load_appeals([rows_csv])
    loaded, cpu_loaded = time.perf_counter(), cpu_s()
    rss_loaded = _current_rss_gib()
    model = train_model(dataset, params=Settings().training_params(), show_progress=False)
    trained, cpu_trained = time.perf_counter(), cpu_s()
    model.save(out)
    result = {
        "rows": len(dataset.frame),
        "read_s": round(loaded - start, 2),
        "train_s": round(trained - loaded, 2),
        "train_cpu_s": round(cpu_trained - cpu_loaded, 2),
        "stages_s": {
            **_stages(marks, loaded),
            "manifest (data hash)": round(trained - marks[-1][1], 2),
        },
        "save_s": round(time.perf_counter() - trained, 2),
        "rss_after_read_gib": round(rss_loaded, 3),
        "peak_rss_gib": round(peak_rss_gib(), 3),
        "model_mb": round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6, 1),
    }
    del dataset

    def predict(frame: Any) -> dict[str, np.ndarray]:
        answers = model.predict(frame)
        got = {h: np.array([a[h] for a in answers]) for h in HEADS}
        got["urgency"] = np.array([a["alternatives"]["urgency"][0]["label"] for a in answers])
        return got

    result["dev_accuracy"] = _dev_accuracy(predict, data)
    return result


def worker_train_streaming(rows_csv: Path, out: Path, data: Path, epochs: int) -> dict:
    from cur_ml.model.streaming import StreamingAppealClassifier

    start, cpu_start = time.perf_counter(), cpu_s()
    model = StreamingAppealClassifier(epochs=epochs).fit_csv(rows_csv)
    trained, cpu_trained = time.perf_counter(), cpu_s()
    # Saved only to measure it: the service never loads this path's models.
    with (out / "streaming.pkl").open("wb") as fh:
        pickle.dump(model, fh, protocol=5)
    result = {
        "rows": model.n_rows_seen_,
        "epochs": epochs,
        "read_s": None,  # read chunk by chunk inside training
        "train_s": round(trained - start, 2),
        "train_cpu_s": round(cpu_trained - cpu_start, 2),
        "stages_s": {k: round(v, 2) for k, v in model.stage_seconds_.items()},
        "save_s": round(time.perf_counter() - trained, 2),
        "rss_after_read_gib": None,
        "peak_rss_gib": round(peak_rss_gib(), 3),
        "model_mb": round((out / "streaming.pkl").stat().st_size / 1e6, 1),
    }
    result["dev_accuracy"] = _dev_accuracy(model.predict, data)
    return result


def _current_rss_gib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / GIB


TRAINERS = {"production": worker_train_production, "streaming": worker_train_streaming}


# ------------------------------------------------------------ the subprocess
def _tree_usage(proc: Any) -> tuple[int, float]:
    """Resident bytes and CPU seconds of a process and its children (0 when it is gone)."""
    import psutil

    rss, cpu = 0, 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            rss += p.memory_info().rss
            times = p.cpu_times()
            cpu += times.user + times.system
        except psutil.Error:
            pass
    return rss, cpu


def _kill_tree(proc: Any) -> None:
    import psutil

    for p in [*proc.children(recursive=True), proc]:
        try:
            p.kill()
        except psutil.Error:
            pass


def _watch(child: Any, proc: Any, caps: dict[str, float]) -> tuple[int, float, str]:
    """Sample the child until it ends or passes a cap; (peak bytes, CPU s, status)."""
    start, peak, cpu = time.perf_counter(), 0, 0.0
    while child.poll() is None:
        rss, cpu_now = _tree_usage(proc)
        peak, cpu = max(peak, rss), max(cpu, cpu_now)
        over = {
            "timeout": time.perf_counter() - start > caps["wall_s"],
            "over memory cap": peak > caps["memory_gib"] * GIB,
            "over CPU cap": cpu > caps["cpu_s"],
        }
        hit = [name for name, passed in over.items() if passed]
        if hit:
            _kill_tree(proc)
            child.wait()
            return peak, cpu, hit[0]
        time.sleep(SAMPLE_S)
    return peak, cpu, "ok"


def run_child(argv: list[str], caps: dict[str, float]) -> dict:
    """Run this script as `argv` in a fresh interpreter, watching time and memory.

    `caps`: wall_s, cpu_s, memory_gib. Returns the child's JSON (last stdout line) with
    `status` "ok", or a record of why it stopped: "timeout", "over memory cap", "over CPU
    cap", "failed (rc N)"; always the sampled peak memory and CPU seconds (of the whole
    process: reading and scoring dev included).
    """
    import psutil

    cmd = [sys.executable, __file__, *argv]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        proc = psutil.Process(child.pid)
        try:
            peak, cpu, status = _watch(child, proc, caps)
        finally:  # stopped from outside (Ctrl-C, SIGTERM): take the child along
            if child.poll() is None:
                _kill_tree(proc)
                child.wait()
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result: dict[str, Any] = {}
    if status == "ok" and child.returncode:
        # A kill by the kernel's OOM killer shows as -9 with no word from the child.
        status = f"failed (rc {child.returncode})"
        result["stderr_tail"] = stderr[-2000:]
    elif status == "ok":
        result = json.loads(stdout.strip().splitlines()[-1])
    result.update(
        status=status,
        process_wall_s=round(wall, 1),
        sampled_peak_gib=round(peak / GIB, 3),
        sampled_cpu_s=round(cpu, 1),
    )
    return result


def measure(size: str, args: argparse.Namespace, data: Path, tmp: Path) -> dict:
    rows_csv = tmp / f"rows-{size}.csv"
    log(f"{size}: preparing rows")
    prep = run_child(
        ["--worker", "prepare", "--data", str(data), "--size", size, "--seed", str(args.seed),
         "--path", str(rows_csv)],
        {"wall_s": 3600, "cpu_s": math.inf, "memory_gib": args.max_memory_gib},
    )  # fmt: skip
    if prep["status"] != "ok":
        sys.exit(f"preparing {size} rows failed: {prep}")
    log(f"{size}: {prep['rows']:,} rows ({prep['how']}); training, engine {args.engine}")
    at_start = machine()
    model_dir = tmp / f"model-{args.engine}-{size}"
    model_dir.mkdir()
    caps = {
        "wall_s": args.max_minutes * 60,
        "cpu_s": args.max_cpu_minutes * 60 if args.max_cpu_minutes else math.inf,
        "memory_gib": args.max_memory_gib,
    }
    epochs = args.stream_epochs
    got = run_child(
        ["--worker", f"train-{args.engine}", "--data", str(data), "--path", str(rows_csv),
         "--out", str(model_dir), "--stream-epochs", str(epochs)],
        caps,
    )  # fmt: skip
    rows_csv.unlink(missing_ok=True)
    shutil.rmtree(model_dir, ignore_errors=True)
    record = {
        "engine": engine_label(args.engine, epochs),
        "size": size,
        **{k: prep[k] for k in ("rows", "how", "train_rows_available", "distinct_texts")},
        **got,
        "limits": {
            "max_minutes": args.max_minutes,
            "max_cpu_minutes": args.max_cpu_minutes,
            "max_memory_gib": args.max_memory_gib,
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine_at_start": at_start,
        "machine": machine(),
    }
    log(f"{size}: {_summary(record)}")
    return record


def engine_label(engine: str, epochs: int) -> str:
    """ "streaming" is one pass over the rows (the curve); more passes are another series."""
    return f"{engine} ×{epochs}" if engine == "streaming" and epochs != 1 else engine


def _summary(r: dict) -> str:
    if r["status"] != "ok":
        return (
            f"{r['status']} after {r['process_wall_s']:.0f} s ({r.get('sampled_cpu_s')} CPU s), "
            f"peak {r['sampled_peak_gib']} GiB"
        )
    return f"train {r['train_s']:.1f} s, peak {r['peak_rss_gib']:.2f} GiB, dev {r['dev_accuracy']}"


# ------------------------------------------------------------------- report
def power_fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(a, b) of y ≈ a·x^b by least squares on log-log; None with fewer than two points."""
    import numpy as np

    if len(points) < 2:
        return None
    x, y = (np.log([p[i] for p in points]) for i in (0, 1))
    b, log_a = np.polyfit(x, y, 1)
    return float(math.exp(log_a)), float(b)


def fits(records: list[dict], engine: str) -> dict:
    """Power-law fits of one engine's finished sizes (CPU s, wall s, peak GiB against rows),
    and the rows ten minutes buy: 600 CPU-seconds on one core, 1,200 on two."""
    done = [r for r in records if r["engine"] == engine and r["status"] == "ok"]
    out: dict[str, Any] = {"points": len(done)}
    for name, key in (("cpu", "train_cpu_s"), ("wall", "train_s"), ("memory", "peak_rss_gib")):
        fitted = power_fit([(r["rows"], r[key]) for r in done if r.get(key)])
        if fitted:
            out[name] = {"a": fitted[0], "b": fitted[1]}
    if "cpu" in out:
        a, b = out["cpu"]["a"], out["cpu"]["b"]
        out["rows_in_10_min"] = {c: (BUDGET_S * int(c) / a) ** (1 / b) for c in ("1", "2")}
    return out


def _fit_lines(records: list[dict]) -> list[str]:
    lines = []
    for engine in sorted({r["engine"] for r in records}):
        f = fits(records, engine)
        if "cpu" not in f or "memory" not in f:
            continue
        c, w, m = f["cpu"], f["wall"], f["memory"]
        one, two = f["rows_in_10_min"]["1"], f["rows_in_10_min"]["2"]
        lines.append(
            f"{engine} ({f['points']} finished sizes): CPU ≈ {c['a']:.3g}·rows^{c['b']:.2f} s, "
            f"peak ≈ {m['a']:.3g}·rows^{m['b']:.2f} GiB, wall here ≈ {w['a']:.3g}·rows^"
            f"{w['b']:.2f} s; 10 minutes ≈ {one:,.0f} rows on one core "
            f"({m['a'] * one ** m['b']:.1f} GiB), ≈ {two:,.0f} on two fully used"
        )
    return lines


def _cpu_cell(r: dict) -> str:
    if r["status"] == "ok":
        return f"{r['train_cpu_s']:.1f}" if r.get("train_cpu_s") else "—"
    return f"≥ {r['sampled_cpu_s']:.0f}" if r.get("sampled_cpu_s") else "—"


def report(records: list[dict]) -> str:
    rows = []
    for r in sorted(records, key=lambda r: (r["engine"], r["rows"])):
        ok = r["status"] == "ok"
        acc = r.get("dev_accuracy") or {}
        rows.append(
            [
                r["engine"],
                f"{r['rows']:,}",
                r["how"],
                f"{r['train_s']:.1f}" if ok else f"> {r['process_wall_s']:.0f} ({r['status']})",
                _cpu_cell(r),
                f"{r['peak_rss_gib']:.2f}" if ok else f"≥ {r['sampled_peak_gib']:.2f}",
                f"{r['train_s'] / r['rows'] * 1000:.2f}" if ok else "—",
                f"{r['read_s']:.1f}" if ok and r.get("read_s") is not None else "—",
                " / ".join(f"{acc[h]:.3f}" for h in HEADS) if acc else "—",
            ]
        )
    head = ["engine", "rows", "rows are", "train s", "CPU s", "peak GiB", "s / 1k rows",
            "read CSV s", "dev acc cat / reason / urg / agency"]  # fmt: skip
    out = [table(head, rows)]
    out += _fit_lines(records)
    stages = [
        [r["engine"], f"{r['rows']:,}", *(f"{k} {v:.1f}" for k, v in r["stages_s"].items())]
        for r in sorted(records, key=lambda r: (r["engine"], r["rows"]))
        if r["status"] == "ok" and r.get("stages_s")
    ]
    if stages:
        out.append("\nstage seconds (training):")
        out += ["  " + "  ".join(s) for s in stages]
    return "\n".join(out)


def plot(records: list[dict], path: Path) -> None:
    """Left: training CPU seconds (wall seconds on this machine as open circles); right:
    peak memory. Log-log, power-law fits dashed, a stopped size as a cross where it stopped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = {"production": "tab:blue", "streaming": "tab:orange"}
    xs = np.geomspace(min(r["rows"] for r in records) / 1.3, 3e6, 50)
    for engine in sorted({r["engine"] for r in records}):
        mine = sorted((r for r in records if r["engine"] == engine), key=lambda r: r["rows"])
        done = [r for r in mine if r["status"] == "ok"]
        c = colours.get(engine, "tab:green")
        f = fits(records, engine)
        rows = [r["rows"] for r in done]
        ax_t.plot(rows, [r["train_s"] for r in done], "o", mfc="none", color=c, alpha=0.6)
        panels = ((ax_t, "train_cpu_s", "sampled_cpu_s", "cpu"),
                  (ax_m, "peak_rss_gib", "sampled_peak_gib", "memory"))  # fmt: skip
        for ax, key, seen, fit_key in panels:
            ax.plot(rows, [r[key] for r in done], "o-", color=c, label=engine)
            for r in mine:
                if r["status"] != "ok":  # drawn where it was stopped: a lower bound
                    ax.plot(r["rows"], r[seen], "x", color=c, ms=10, mew=2)
                    ax.annotate(r["status"], (r["rows"], r[seen]), fontsize=7, xytext=(5, -3),
                                textcoords="offset points")  # fmt: skip
            if fit_key in f and not engine.startswith("streaming ×"):
                a, b = f[fit_key]["a"], f[fit_key]["b"]
                ax.plot(
                    xs, a * xs**b, "--", color=c, alpha=0.5, lw=1, label=f"{a:.2g}·rows^{b:.2f}"
                )
    ax_t.plot([], [], "o", mfc="none", color="grey", label="wall s on the shared machine")
    ax_t.axhline(BUDGET_S, color="red", lw=1, ls=":", label="10 min on one core")
    ax_t.axhline(2 * BUDGET_S, color="darkred", lw=1, ls=":", label="10 min on two cores")
    for cap in {r["limits"]["max_memory_gib"] for r in records}:
        ax_m.axhline(cap, color="red", lw=1, ls=":", label=f"memory cap {cap:g} GiB")
    for ax, ylabel in ((ax_t, "training CPU seconds"), (ax_m, "peak resident memory, GiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training rows (≤ 38,395 real, beyond: resampled, social style)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("cur-ml retraining on one 2-core worker: CPU time and peak memory against rows")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save(path: Path, records: list[dict]) -> None:
    """The runs and the fits derived from them."""
    engines = sorted({r["engine"] for r in records})
    body = {"budget_s": BUDGET_S, "fits": {e: fits(records, e) for e in engines}, "runs": records}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", "utf-8")


def merge(path: Path, new: list[dict]) -> list[dict]:
    """Earlier records of other (engine, size) pairs from `path`, then the new ones."""
    old = json.loads(path.read_text("utf-8"))["runs"] if path.is_file() else []
    fresh = {(r["engine"], r["size"]) for r in new}
    return [r for r in old if (r["engine"], r["size"]) not in fresh] + new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="appeals CSV (default: shared)")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated rows or 'all'")
    parser.add_argument("--engine", choices=sorted(TRAINERS), default="production")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--stream-epochs",
        type=int,
        default=1,
        help="passes of --engine streaming over the rows (not 1: a series of its own)",
    )
    parser.add_argument("--max-minutes", type=float, default=30.0, help="time cap per size")
    parser.add_argument(
        "--max-cpu-minutes",
        type=float,
        default=None,
        help="CPU-time cap per size (a busy machine stretches wall time, not CPU time)",
    )
    parser.add_argument("--max-memory-gib", type=float, default=12.0, help="memory cap per size")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results (merged)")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument("--table", action="store_true", help="re-print and re-plot --json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.table:
        records = json.loads(args.json.read_text("utf-8"))["runs"]
        print(report(records))
        save(args.json, records)  # the fits of the current code
        plot(records, args.plot)
        return 0
    data = resolve_data(args.data)
    if args.worker == "prepare":
        print(json.dumps(worker_prepare(data, args.size, args.seed, args.path)))
        return 0
    if args.worker:
        trainer = TRAINERS[args.worker.removeprefix("train-")]
        print(json.dumps(trainer(args.path, args.out, data, args.stream_epochs)))
        return 0

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s != "all" and not (s.isdigit() and int(s) > 0)]
    if bad:
        sys.exit(f"--sizes: {', '.join(bad)} is neither a positive number of rows nor 'all'")
    # A plain `kill` of this script still removes its rows and stops its child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    log(f"growth · engine {args.engine} · sizes {', '.join(sizes)} · {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="cur-ml-growth-"))
    new: list[dict] = []
    try:
        for size in sizes:
            new.append(measure(size, args, data, tmp))
            records = merge(args.json, new)
            save(args.json, records)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"growth · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine()}")
    print(f"data: {data}")
    print(report(records))
    plot(records, args.plot)
    log(f"figures merged into {args.json}; plot {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
