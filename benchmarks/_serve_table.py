"""Tables of `serve.py`: the issue's measures (today, target, now) and the details of each run."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["details", "summary"]


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _runs(result: dict, key: str) -> list[dict]:
    return [run[key] for run in result["runs"] if key in run]


def _open_row(res: list[dict]) -> tuple[str, str, bool]:
    singles = [r["single"] for r in res]
    p50 = _med([s["p50_ms"] for s in singles])
    p99 = _med([s["p99_ms"] for s in singles])
    errors = sum(s["errors"] for s in singles)
    each = "; ".join(f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['errors']}" for s in singles)
    return f"{p50:.1f} / {p99:.1f} ms / {errors}", each, p50 <= 2 and p99 <= 8 and errors == 0


def summary(result: dict) -> str:
    """The issue's table with our column: medians of the runs, every run beside them."""
    args = result["args"]
    rate, duration = float(args["rate"]), float(args["duration"])
    n = len(result["runs"])
    rows: list[tuple[str, str, str, str, str, str]] = []
    loop = f"{rate:.0f} req/s open loop for {duration:.0f} s, with explanations: p50 / p99 / errors"
    one = _runs(result, "1w-sqlite")
    if one:
        now, each, ok = _open_row(one)
        rows.append(
            (
                f"HTTP, 1 worker, {loop}",
                "46 / 252 ms / 0",
                "≤ 2 ms / ≤ 8 ms / 0",
                now,
                _yes(ok),
                each,
            )
        )
    two = _runs(result, "2w-sqlite")
    if two:
        now, each, ok = _open_row(two)
        rows.append((f"HTTP, 2 workers, {loop}", "–", "(≤ 2 ms / ≤ 8 ms / 0)", now, _yes(ok), each))
    mixed = [r["mixed"] for r in one if "mixed" in r]
    if mixed:
        p99s = [m["single"]["p99_ms"] for m in mixed]
        errors = sum(m["single"]["errors"] for m in mixed)
        label = (
            f"HTTP, 1 worker, {rate:.0f} req/s of single appeals while another client sends "
            f"{args['big_batches']} batches of {args['big_appeals']} × "
            f"{int(args['big_chars']):,}-character texts back to back: single-appeal p99"
        )
        each = "; ".join(f"{p:.1f}" for p in p99s)
        rows.append(
            (
                label,
                "seconds",
                "≤ 25 ms",
                f"{_med(p99s):.1f} ms ({errors} errors)",
                _yes(_med(p99s) <= 25 and errors == 0),
                each,
            )
        )
    canned = _runs(result, "1w-sqlite-canned")
    if canned:
        now, each, ok = _open_row(canned)
        rows.append(
            (
                "diagnostic — the serving path alone (`model.predict` answers a canned "
                "prediction in the server process), same open loop, 1 worker",
                "–",
                "(≤ 2 ms / ≤ 8 ms / 0)",
                now,
                _yes(ok),
                each,
            )
        )
        mixed_c = [r["mixed"] for r in canned if "mixed" in r]
        if mixed_c:
            p99s = [m["single"]["p99_ms"] for m in mixed_c]
            errors = sum(m["single"]["errors"] for m in mixed_c)
            rows.append(
                (
                    "diagnostic — the serving path alone under the bulk load (the large lane "
                    "predicts for real): single-appeal p99",
                    "–",
                    "(≤ 25 ms)",
                    f"{_med(p99s):.1f} ms ({errors} errors)",
                    _yes(_med(p99s) <= 25 and errors == 0),
                    "; ".join(f"{p:.1f}" for p in p99s),
                )
            )
    colds = [r["cold_start_s"] for r in one]
    if colds:
        each = "; ".join(f"{c:.2f}" for c in colds)
        rows.append(
            (
                "cold start to ready, 1 worker (process start → /readyz 200)",
                "4–6 s",
                "≤ 2.5 s",
                f"{_med(colds):.2f} s",
                _yes(_med(colds) <= 2.5),
                each,
            )
        )
    if result["durability"]:
        parts, each, ok = [], [], True
        for kind, runs in result["durability"].items():
            acked = sum(r["acknowledged"] for r in runs)
            missing = sum(r["missing"] for r in runs)
            ok = ok and missing == 0
            parts.append(f"{_store(kind)} {missing:,} of {acked:,}")
            each.append(f"{_store(kind)}: " + ", ".join(str(r["missing"]) for r in runs))
        rows.append(
            (
                "acknowledged predictions missing after SIGKILL under load (all runs)",
                "400 of 5,400",
                "0",
                ", ".join(parts),
                _yes(ok),
                "; ".join(each),
            )
        )
    pg = _runs(result, "1w-postgresql")
    if pg and one:
        now, each, _ = _open_row(pg)
        rows.append(
            (
                "cost of durable writes: the 1-worker open loop with the store on "
                "PostgreSQL (above: SQLite)",
                "–",
                "–",
                now,
                "",
                each,
            )
        )
    for kind, runs in result["writer"].items():
        p50 = _med([r["single_p50_ms"] for r in runs])
        p99 = _med([r["single_p99_ms"] for r in runs])
        rps = _med([r["rows_per_s_batch500"] for r in runs])
        each = "; ".join(f"{r['single_p50_ms']:.2f} / {r['single_p99_ms']:.2f}" for r in runs)
        rows.append(
            (
                f"cost of durable writes, {_store(kind)}, writer alone: commit a single "
                "answer p50 / p99; rows/s in 500-row answers",
                "–",
                "–",
                f"{p50:.2f} / {p99:.2f} ms; {rps:,.0f} rows/s",
                "",
                each,
            )
        )
    head = ("measure", "today", "target", f"now (median of {n})", "met", "each run")
    out = [
        f"serving benchmark · {result['machine']} (after: {result.get('machine_after', '?')})",
        f"model {result['model']} · {result.get('seconds', 0) / 60:.1f} min",
        "",
        _md([head, *rows]),
    ]
    return "\n".join(out)


def details(result: dict) -> str:
    """Every run's figures: latencies, throughput, memory, the bulk client, the stores."""
    inproc = result["in_process"]
    out = [
        "in-process `model.predict`, one appeal at a time, p50 / p99 ms: "
        f"{inproc['single_p50_ms_explain_True']:.2f} / {inproc['single_p99_ms_explain_True']:.2f}"
        f" (explain=False {inproc['single_p50_ms_explain_False']:.2f} / "
        f"{inproc['single_p99_ms_explain_False']:.2f}); batch of {result['args']['batch']}: "
        f"{inproc['batch_appeals_per_s_explain_True']:.0f} appeals/s "
        f"(explain=False {inproc['batch_appeals_per_s_explain_False']:.0f})",
        "",
    ]
    head = (
        "run",
        "server",
        "cold start s",
        "p50",
        "p90",
        "p99",
        "max ms",
        "p50 / p99 from send",
        "errors",
        "req/s",
        "RSS MB workers / lanes",
    )
    rows: list[tuple[Any, ...]] = []
    for i, run in enumerate(result["runs"], 1):
        for key, res in run.items():
            s = res["single"]
            rss = res.get("rss_mb", {})
            rows.append(
                (
                    i,
                    key,
                    f"{res['cold_start_s']:.2f}",
                    f"{s['p50_ms']:.2f}",
                    f"{s['p90_ms']:.2f}",
                    f"{s['p99_ms']:.2f}",
                    f"{s['max_ms']:.1f}",
                    f"{s['sent_p50_ms']:.2f} / {s['sent_p99_ms']:.2f}",
                    s["errors"],
                    f"{s['achieved_rps']:.0f}",
                    _rss(rss),
                )
            )
            if "mixed" in res:
                m, b = res["mixed"]["single"], res["mixed"]["big"]
                rows.append(
                    (
                        i,
                        f"{key} + bulk",
                        "",
                        f"{m['p50_ms']:.2f}",
                        f"{m['p90_ms']:.2f}",
                        f"{m['p99_ms']:.2f}",
                        f"{m['max_ms']:.1f}",
                        f"{m['sent_p50_ms']:.2f} / {m['sent_p99_ms']:.2f}",
                        m["errors"],
                        f"{m['achieved_rps']:.0f}",
                        "",
                    )
                )
    out.append(_md([head, *rows]))
    out.append("")
    for i, run in enumerate(result["runs"], 1):
        for key, res in run.items():
            if "mixed" in res:
                b = res["mixed"]["big"]
                out.append(
                    f"run {i}, {key}, bulk client: {b['batches']} batches in "
                    f"{b['seconds']:.1f} s (p50 {b['batch_p50_s']:.2f} s, max "
                    f"{b['batch_max_s']:.2f} s per batch), statuses {b['statuses']}; "
                    f"large lane: {res['mixed'].get('large_outcomes')}"
                )
            if "batch" in res:
                bt = res["batch"]
                out.append(
                    f"run {i}, {key}, batches of {result['args']['batch']}, one client per"
                    f" worker: {bt['explain_True']['appeals_per_s']:.0f} appeals/s "
                    f"(explain=False {bt['explain_False']['appeals_per_s']:.0f}), errors "
                    f"{bt['explain_True']['errors'] + bt['explain_False']['errors']}"
                )
    for kind, runs in result["durability"].items():
        out.append(
            f"SIGKILL under load, {_store(kind)}: "
            + "; ".join(f"{r['missing']} of {r['acknowledged']} missing" for r in runs)
        )
    for kind, runs in result["writer"].items():
        out.append(
            f"writer alone, {_store(kind)}: "
            + "; ".join(
                f"single {r['single_p50_ms']:.2f} / {r['single_p99_ms']:.2f} ms, 500 rows "
                f"{r['batch500_p50_ms']:.1f} ms ({r['rows_per_s_batch500']:,.0f} rows/s)"
                for r in runs
            )
        )
    return "\n".join(out)


def _store(kind: str) -> str:
    return {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(kind, kind)


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _rss(rss: dict) -> str:
    if not rss:
        return ""
    workers = " / ".join(f"{v:.0f}" for v in rss.get("workers", []))
    lanes = " / ".join(f"{v:.0f}" for v in rss.get("lanes", [])) or "–"
    return f"{workers} / lanes {lanes}"


def _md(rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(str(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)
