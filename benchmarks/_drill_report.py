"""The drills' figures: one row per scenario run from the load's records and the action's
timings, the printed table, and medians over repeats."""

from __future__ import annotations

import statistics
from typing import Any

from _common import table

__all__ = ["SCENARIOS", "format_table", "medians", "row"]

SCENARIOS = ("kill", "mlflow", "promote")


def row(
    scenario: str, load: dict[str, Any], action: dict[str, Any], acked: list[int], stored: int
) -> dict[str, Any]:
    s = load["summary"]
    predict, correction = s["predict"], s["correction"]
    start = load["started_at"]
    out = {
        "scenario": scenario,
        "requests": s["requests"],
        "rate": load["plan"]["rate"],
        "achieved_rps": s["achieved_rps"],
        "failed_predicts": predict["failed"],
        "failed_predicts_pct": predict["failed_pct"],
        "predicts": predict["sent"],
        "predicts_by_region": predict["by_region"],
        "predict_failures": predict["failures"],
        "corrections_sent": correction["sent"],
        "corrections_failed": correction["failed"],
        "correction_failures": correction["failures"],
        "corrections_acked": len(acked),
        "corrections_stored": stored,
        "corrections_lost": len(acked) - stored,
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "max_ms": s["max_ms"],
        "generator_wait_p99_ms": s["wait_p99_ms"],
        "generator_cpu_ms_per_request": load["generator_cpu_ms_per_request"],
        "promoted_all_s": action.get("all_replicas_s"),
        "replica_ready_s": action.get("ready_s"),
        "mlflow_away_s": action.get("away_s"),
        "action": action,
        "failures_by_second": _by_second(load["requests"]),
    }
    if scenario == "kill":
        out["replica_rejoined_s"] = _rejoined(load["requests"], start, action)
    return out


def _by_second(requests: list[dict[str, Any]]) -> dict[str, int]:
    """Failed requests per second of the run (only the seconds that had any)."""
    failed: dict[str, int] = {}
    for r in requests:
        ok = r["status"] == 200 or (r["kind"] == "correction" and r["status"] == 201)
        if not ok:
            key = str(int(r["due_s"]))
            failed[key] = failed.get(key, 0) + 1
    return failed


def _rejoined(requests: list[dict[str, Any]], start: float, action: dict) -> float | None:
    """Seconds from the kill to the first answer nginx got from the restarted replica."""
    where = f"127.0.0.1:{action['port']}"
    answered = [
        start + r["due_s"] + r["latency_ms"] / 1e3
        for r in requests
        if r["upstream"] == where
        and r["status"] in (200, 201)
        and start + r["due_s"] > action["killed_at"]
    ]
    return min(answered) - action["killed_at"] if answered else None


# --------------------------------------------------------------------------- report
def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def format_table(rows: list[dict[str, Any]], header_line: str) -> str:
    head = [
        "scenario",
        "requests",
        "req/s asked",
        "req/s achieved",
        "failed predicts",
        "corrections acked / stored",
        "p50 / p99 ms",
        "all replicas on promoted",
        "replica restart: ready / via nginx",
        "load avg (1 min) before / after",
    ]
    body = []
    for r in rows:
        m = r["machine"]
        body.append(
            [
                r["scenario"],
                f"{r['requests']:,}",
                f"{r['rate']:g}",
                _num(r["achieved_rps"]),
                f"{r['failed_predicts']} ({r['failed_predicts_pct']:.2f} %)",
                f"{r['corrections_acked']:,} / {r['corrections_stored']:,}",
                f"{_num(r['p50_ms'])} / {_num(r['p99_ms'])}",
                "—" if r["promoted_all_s"] is None else f"{r['promoted_all_s']:.1f} s",
                _restart(r),
                f"{m['load_before'][0]:.2f} / {m['load_after'][0]:.2f}",
            ]
        )
    lines = [header_line, table(head, body)]
    for r in rows:
        lines.append(_detail(r))
    return "\n".join(lines)


def _restart(r: dict[str, Any]) -> str:
    if r["scenario"] != "kill":
        return "—"
    return f"{_num(r['replica_ready_s'])} / {_num(r.get('replica_rejoined_s'))} s"


def _detail(r: dict[str, Any]) -> str:
    a = r["action"]
    how = f" {r['correction_failures']}" if r["correction_failures"] else ""
    text = (
        f"{r['scenario']}: predict failures {r['predict_failures'] or 'none'}, corrections "
        f"failed {r['corrections_failed']}{how}, lost "
        f"{r['corrections_lost']}; machine CPU busy {r['machine']['cpu_busy_pct']:.0f} % of "
        f"{r['machine']['cores']} cores; generator waited p99 {_num(r['generator_wait_p99_ms'])} "
        f"ms for a connection"
    )
    if r["scenario"] == "kill":
        text += (
            f"; {a['replica']} SIGKILLed, new pid after {_num(a['respawned_s'])} s, /readyz 200 "
            f"after {_num(a['ready_s'])} s, first answer through nginx after "
            f"{_num(r.get('replica_rejoined_s'))} s"
        )
    elif r["scenario"] == "mlflow":
        text += (
            f"; MLflow /health back {_num(a['away_s'])} s after SIGTERM; the replicas logged "
            f"{r['replica_registry_refusals']} refused registry connections meanwhile"
        )
    else:
        per = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(a["replica_s"].items()))
        text += f"; v{a['registered_version']} ({a['model_version']}): {per or 'none reached'}"
    if r["failures_by_second"]:
        text += f"; failures by second of the run {r['failures_by_second']}"
    return "  " + text


def medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scenario over repeats: medians of the figures, sums of failures and losses."""
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        mine = [r for r in rows if r["scenario"] == scenario]
        if not mine:
            continue

        def med(key: str, mine: list = mine) -> float | None:
            values = [r[key] for r in mine if r.get(key) is not None]
            return statistics.median(values) if values else None

        out[scenario] = {
            "runs": len(mine),
            **{
                k: med(k)
                for k in (
                    "achieved_rps",
                    "p50_ms",
                    "p99_ms",
                    "failed_predicts_pct",
                    "promoted_all_s",
                    "replica_ready_s",
                    "mlflow_away_s",
                )
            },
            "failed_predicts": sum(r["failed_predicts"] for r in mine),
            "corrections_lost": sum(r["corrections_lost"] for r in mine),
        }
    return out
