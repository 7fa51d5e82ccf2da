"""Failure drills of the local cluster (issue 13, part 4): mixed load through nginx while one
thing breaks, one scenario at a time, and what the callers saw.

    nice -n 10 .venv/bin/python benchmarks/drill.py                  # all three, 60 s each
    .venv/bin/python benchmarks/drill.py --scenario kill --seconds 15
    .venv/bin/python benchmarks/drill.py --state-dir /tmp/c --json /tmp/drill.json

- **kill**: SIGKILL one replica at a third of the run. Failed predicts; corrections
  acknowledged vs found in PostgreSQL afterwards (by id and idempotency key: lost must be 0);
  when the supervisor's new process answered `/readyz` and when nginx first sent it a request.
- **mlflow**: SIGTERM to the MLflow server's process group at a third of the run (the
  supervisor starts it again). Failed predicts must be 0; how long the registry was away.
- **promote**: before the run, a model of the default region is trained on its demo data and
  registered (`cur-ml train --no-champion`, the cluster's settings), so that training does not
  take the CPU the run measures; at a third of the run this process moves the `champion` alias
  to it, as `cur-ml worker` does on a promotion. Every replica is asked directly (not through
  nginx) for the version it serves until all serve the new one: seconds from the alias move.

The cluster is the one of `--state-dir` (default: `deploy/cluster`'s) when it runs; otherwise
`deploy/cluster up` brings it up here, and it is taken down at the end (unless `--keep`). The
actions and probes are in `_drill_actions.py`, the figures and the table in `_drill_report.py`.
The load (`_drill_load.py`) runs in its own process: `--rate` req/s (default 300), 15 % corrections
of predictions answered earlier in the run, a fifth of the predicts for the other regions.
Nothing is retried by the client; a request unanswered 5 s after it was due is a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _drill_actions import (
    CLUSTER,
    cpu_ticks,
    kill_replica,
    open_cluster,
    promote,
    registry_refusals,
    rejoined_after,
    restart_mlflow,
    say,
    stored_corrections,
    train_candidate,
    wait_healthy,
)
from _drill_report import SCENARIOS, format_table, medians, row

from cur_ml.deploy.config import DEFAULT_STATE_DIR, ClusterConfig

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "_drill_load.py"
DEFAULT_JSON = HERE / "results" / "drill.json"
#: The action comes at this share of the run: a third of the load before, two thirds after.
ACT_AT = 1 / 3


# --------------------------------------------------------------------------- one drill
def run_load(config: ClusterConfig, args: argparse.Namespace, out: Path) -> subprocess.Popen:
    from cur_ml.deploy.tokens import load_tokens

    tokens = load_tokens(config.tokens_file)
    env = {
        **os.environ,
        "CUR_ML_PREDICT_TOKEN": tokens["predict_token"],
        "CUR_ML_OPERATOR_TOKEN": tokens["operator_token"],
    }
    argv = [sys.executable, str(LOADGEN), "--url", config.nginx_url, "--out", str(out)]
    argv += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
    argv += ["--regions", ",".join(config.regions), "--connections", str(args.connections)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)


def drill(config: ClusterConfig, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    """One scenario under load; its row of figures (and the details behind them)."""
    from cur_ml.deploy.tokens import load_tokens

    token = load_tokens(config.tokens_file)["predict_token"]
    wait_healthy(config)
    with tempfile.TemporaryDirectory(prefix="cur-ml-drill-") as tmp:
        candidate = None
        if scenario == "promote":
            say("promote: training and registering the candidate before the run")
            candidate = train_candidate(config, config.regions[0], Path(tmp) / "candidate")
            from mlflow import MlflowClient  # noqa: F401 - imported now, not during the run
        logs = {p: p.stat().st_size for p in config.logs_dir.glob("replica-*.log")}
        load_before = os.getloadavg()
        busy0, total0 = cpu_ticks()
        out = Path(tmp) / "load.json"
        say(f"{scenario}: {args.rate:g} req/s through {config.nginx_url} for {args.seconds:g} s")
        proc = run_load(config, args, out)
        assert proc.stdout is not None
        started_at = json.loads(proc.stdout.readline())["started_at"]
        act_at = started_at + ACT_AT * args.seconds
        if scenario == "kill":
            action = kill_replica(config, act_at)
        elif scenario == "mlflow":
            action = restart_mlflow(config, act_at)
        else:
            assert candidate is not None
            action = promote(config, act_at, candidate, token)
        proc.stdout.read()
        if proc.wait() != 0:
            raise SystemExit(f"the load generator failed ({proc.returncode})")
        busy1, total1 = cpu_ticks()
        load = json.loads(out.read_text(encoding="utf-8"))
        if args.raw is not None:  # every request's record, for a closer look
            args.raw.mkdir(parents=True, exist_ok=True)
            (args.raw / f"{scenario}-{int(started_at)}.json").write_text(
                json.dumps({"load": load, "action": action}), encoding="utf-8"
            )
    load_after = os.getloadavg()
    acked = load["summary"]["correction"].pop("acknowledged_ids")
    stored = stored_corrections(config, acked, load["run_id"])
    wait_healthy(config)  # the next scenario starts from a whole cluster
    figures = row(scenario, load, action, acked, stored)
    if scenario == "mlflow":
        figures["replica_registry_refusals"] = registry_refusals(config, logs)
    if scenario == "kill" and figures["replica_rejoined_s"] is None:
        figures["replica_rejoined_s"] = rejoined_after(config, action)
        figures["replica_rejoined_after_the_run"] = True
    return figures | {
        "machine": {
            "load_before": load_before,
            "load_after": load_after,
            "cpu_busy_pct": 100 * (busy1 - busy0) / max(1, total1 - total0),
            "cores": os.cpu_count(),
        }
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="all", help="kill, mlflow, promote, all or a list")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each scenario")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--up-args", default="", help="options of `deploy/cluster up`, quoted")
    parser.add_argument("--keep", action="store_true", help="leave a cluster brought up here")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--raw", type=Path, help="a directory for every request's record")
    args = parser.parse_args()
    wanted = SCENARIOS if args.scenario == "all" else tuple(args.scenario.split(","))
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        parser.error(f"--scenario: {unknown[0]!r} is none of {', '.join(SCENARIOS)}, all")
    config, brought_up = open_cluster(args.state_dir, shlex.split(args.up_args))
    started = datetime.now(UTC)
    header = (
        f"failure drills · {started:%Y-%m-%d %H:%M} UTC · {os.cpu_count()} cores · "
        f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())} · "
        f"{args.rate:g} req/s for {args.seconds:g} s per scenario through nginx, regions "
        f"{', '.join(config.regions)}"
    )
    rows: list[dict[str, Any]] = []
    try:
        for _ in range(args.repeats):
            for scenario in wanted:
                rows.append(drill(config, scenario, args))
    finally:
        if brought_up and not args.keep:
            down = [str(CLUSTER), "down", "--state-dir", str(args.state_dir)]
            subprocess.run(down, check=False, stdout=sys.stderr)
    print(format_table(rows, header))
    if args.repeats > 1:
        for scenario, figures in medians(rows).items():
            shown = ", ".join(
                f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in figures.items()
                if k != "runs" and v is not None
            )
            print(f"  medians of {figures['runs']} {scenario} runs: {shown}")
    result = {
        "header": header,
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": args.seconds,
        "rate": args.rate,
        "regions": list(config.regions),
        "medians": medians(rows),
        "runs": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    say(f"written {args.json}")


if __name__ == "__main__":
    main()
