"""Open-loop load of the failure drills (`drill.py`), run in a process of its own: single-appeal
predicts of every region named and, among them, corrections of predictions answered earlier in
the same run.

    python benchmarks/_drill_load.py --url http://127.0.0.1:8800 --rate 300 --seconds 60 \
        --regions spb,krd --out /tmp/load.json

Tokens come from the environment, never the command line (which `ps` shows):
CUR_ML_PREDICT_TOKEN for predict, CUR_ML_OPERATOR_TOKEN (else CUR_ML_ADMIN_TOKEN) for
corrections. Writes one JSON object: the plan, a summary and one record per request.

Why here and not in `cur_ml/`: it is a measuring tool of this repository (like
`_serve_load.py`), not something the service runs, and the package should not grow a client.

Why a bare HTTP/1.1 client over asyncio streams and not httpx: measured on this 2-core machine
against nginx answering a constant, `httpx.AsyncClient` costs 0.7 ms of CPU per request with 4
connections and 2.0-2.8 ms with 32-128; at 300 req/s that is 0.3-0.8 of a core taken from the
replicas under test. This client costs ~0.03 ms (~0.01 ms with uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = ["LoadPlan", "Outcome", "demo_appeals", "pct", "run_load", "summarize"]

REPO = Path(__file__).resolve().parent.parent
#: Appeal fields a caller sends (labels never are); the demo files of every region share them.
SENT_FIELDS = ("text", "created_at", "source", "district", "municipality", "address")
URGENCIES = ("high", "medium", "low")
#: A correction refers to a prediction answered at least this long ago, when there is one:
#: an operator corrects what they have read, and the answer may come from another replica.
CORRECTION_MIN_AGE_S = 1.0


@dataclass(frozen=True)
class LoadPlan:
    """What to send: `rate` req/s for `seconds`, `correction_share` of them corrections, the
    predicts spread over `regions` (the first one, the default, sent without a `region`)."""

    rate: float = 300.0
    seconds: float = 60.0
    correction_share: float = 0.15
    regions: tuple[str, ...] = ("spb",)
    #: Share of predicts for regions after the first (split evenly among them).
    other_region_share: float = 0.2
    connections: int = 128
    timeout_s: float = 5.0
    seed: int = 0


@dataclass
class Outcome:
    """One request: what it was, when it was due (s from the start), how it ended."""

    kind: str  # "predict" or "correction"
    region: str
    due_s: float
    status: int | str  # HTTP status, "timeout", or the exception's class name
    latency_ms: float  # from the moment it was due (no coordinated omission)
    wait_ms: float = 0.0  # due → written on a connection (the generator or its pool behind)
    correction_ids: list[int] = field(default_factory=list)
    upstream: str | None = None  # the replica that answered (nginx's X-Upstream header)

    @property
    def ok(self) -> bool:
        return self.status in ((200,) if self.kind == "predict" else (200, 201))


# --------------------------------------------------------------------------- HTTP
class _Conn:
    """A bare keep-alive HTTP/1.1 connection (see the module's docstring for why)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = await self._chunked()
        else:
            body = await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, headers, body

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _post(host: str, port: int, path: str, body: bytes, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# --------------------------------------------------------------------------- payloads
def demo_appeals(region: str, limit: int = 2_000) -> list[dict[str, Any]]:
    """Input fields of the region's demo appeals (datasets/demo/ for spb, datasets/demo_<r>/
    for another region); refuses a region without demo data."""
    path = REPO / "datasets" / ("demo" if region == "spb" else f"demo_{region}") / "appeals.csv"
    if not path.is_file():
        raise FileNotFoundError(f"region {region!r}: no demo appeals at {path}")
    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            appeal: dict[str, Any] = {k: row[k] for k in SENT_FIELDS if row.get(k)}
            if row.get("lat") and row.get("lon"):
                appeal["lat"], appeal["lon"] = float(row["lat"]), float(row["lon"])
            out.append(appeal)
            if len(out) >= limit:
                break
    return out


def _schedule(plan: LoadPlan) -> list[tuple[str, str]]:
    """(kind, region) of every request, drawn once from the seed: the same mix every run."""
    rng = random.Random(plan.seed)
    default, others = plan.regions[0], plan.regions[1:]
    out = []
    for _ in range(round(plan.rate * plan.seconds)):
        kind = "correction" if rng.random() < plan.correction_share else "predict"
        region = (
            rng.choice(others) if others and rng.random() < plan.other_region_share else default
        )
        out.append((kind, region))
    return out


# --------------------------------------------------------------------------- the run
async def run_load(
    url: str,
    plan: LoadPlan,
    *,
    predict_token: str | None = None,
    operator_token: str | None = None,
    on_start: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Send `plan` to `url` open loop: request i is due at start + i / rate whatever the
    answers, `plan.connections` connections at most; a request not answered within
    `plan.timeout_s` of being due is a failure ("timeout"). Nothing is retried. `on_start`
    is told the wall-clock time the first request is due."""
    host, _, port_text = url.removeprefix("http://").rstrip("/").partition(":")
    port = int(port_text or 80)
    rng = random.Random(plan.seed + 1)
    run_id = uuid.uuid4().hex[:8]
    bodies = {
        region: [
            orjson.dumps(
                {"appeals": [a if i == 0 else {**a, "region": region}]},
            )
            for a in demo_appeals(region)
        ]
        for i, region in enumerate(plan.regions)
    }
    schedule = _schedule(plan)
    answered: list[tuple[float, str, str]] = []  # (when, prediction_id, region)
    outcomes: list[Outcome] = []
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    start = 0.0

    def predict_raw(region: str, i: int) -> bytes:
        pool = bodies[region]
        return _post(host, port, "/v1/predict", pool[i % len(pool)], predict_token)

    def correction_raw(i: int) -> tuple[bytes, str] | None:
        """A correction of an answered prediction (older than CORRECTION_MIN_AGE_S if any)."""
        if not answered:
            return None
        now = time.perf_counter()
        old = len(answered)
        while old > 0 and now - answered[old - 1][0] < CORRECTION_MIN_AGE_S:
            old -= 1
        _, prediction_id, region = answered[rng.randrange(old or len(answered))]
        item = {
            "prediction_id": prediction_id,
            "field": "urgency",
            "value": rng.choice(URGENCIES),
            "operator": "drill",
            "comment": "failure drill",
            "idempotency_key": f"drill-{run_id}-{i}",
        }
        raw = _post(
            host, port, "/v1/corrections", orjson.dumps({"corrections": [item]}), operator_token
        )
        return raw, region

    async def send(conn: _Conn, i: int, due: float) -> None:
        kind, region = schedule[i]
        raw: bytes | None = None
        if kind == "correction":
            made = correction_raw(i)
            if made is None:  # nothing answered yet to correct: a predict instead
                kind = "predict"
            else:
                raw, region = made
        if raw is None:
            raw = predict_raw(region, i)
        sent = time.perf_counter()
        outcome = Outcome(kind, region, due - start, "", 0.0, (sent - due) * 1e3)
        try:
            remaining = due + plan.timeout_s - sent
            if remaining <= 0:
                raise TimeoutError
            status, headers, body = await asyncio.wait_for(conn.request(raw), remaining)
        except TimeoutError:
            conn.close()  # the answer may still come: this connection cannot be reused
            outcome.status = "timeout"
        except Exception as exc:
            conn.close()
            outcome.status = type(exc).__name__
        else:
            outcome.status = status
            # After a retry nginx names both replicas: the last one answered.
            upstream = headers.get(b"x-upstream", b"").decode().rsplit(",", 1)[-1].strip()
            outcome.upstream = upstream or None
            if status in (200, 201):
                _note(outcome, body, answered)
        outcome.latency_ms = (time.perf_counter() - due) * 1e3
        outcomes.append(outcome)

    async def worker() -> None:
        conn = _Conn(host, port)
        while (item := await queue.get()) is not None:
            await send(conn, *item)
        conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(plan.connections)]
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.05
    started_at = time.time() + 0.05
    if on_start is not None:
        on_start(started_at)
    for i in range(len(schedule)):
        due = start + i / plan.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    issued = time.perf_counter() - start
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    outcomes.sort(key=lambda o: o.due_s)
    return {
        "plan": asdict(plan),
        "url": url,
        "run_id": run_id,  # the idempotency keys are drill-<run_id>-<i>
        "started_at": started_at,
        "issue_seconds": issued,
        "generator_cpu_ms_per_request": (time.process_time() - cpu0) / max(1, len(schedule)) * 1e3,
        "summary": summarize(outcomes, plan.seconds),
        "requests": [asdict(o) for o in outcomes],
    }


def _note(outcome: Outcome, body: bytes, answered: list[tuple[float, str, str]]) -> None:
    """Keep what a success returned: a prediction id to correct later, or the stored
    correction ids the service acknowledged."""
    payload = orjson.loads(body)
    if outcome.kind == "predict":
        for p in payload.get("predictions", []):
            region = p.get("region") or outcome.region
            answered.append((time.perf_counter(), p["prediction_id"], region))
    else:
        for c in payload.get("corrections", []):
            outcome.correction_ids.append(int(c["id"]))
            outcome.correction_ids.extend(int(d["id"]) for d in c.get("derived", []))


# --------------------------------------------------------------------------- figures
def pct(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (nearest rank), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarize(outcomes: Sequence[Outcome | dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Counts, failures by kind and status, the achieved rate (successes per second of the
    plan), latency percentiles of successes, and how far the generator fell behind."""
    rows = [o if isinstance(o, Outcome) else Outcome(**o) for o in outcomes]
    out: dict[str, Any] = {"requests": len(rows), "seconds": seconds}
    for kind in ("predict", "correction"):
        mine = [o for o in rows if o.kind == kind]
        failed = [o for o in mine if not o.ok]
        statuses: dict[str, int] = {}
        for o in failed:
            statuses[str(o.status)] = statuses.get(str(o.status), 0) + 1
        by_region: dict[str, int] = {}
        for o in mine:
            by_region[o.region] = by_region.get(o.region, 0) + 1
        out[kind] = {
            "sent": len(mine),
            "by_region": by_region,
            "failed": len(failed),
            "failed_pct": 100 * len(failed) / len(mine) if mine else 0.0,
            "failures": statuses,
        }
    ok = [o for o in rows if o.ok]
    latencies = [o.latency_ms for o in ok]
    out["correction"]["acknowledged_ids"] = sorted(
        {i for o in rows if o.kind == "correction" and o.ok for i in o.correction_ids}
    )
    out["achieved_rps"] = len(ok) / seconds if seconds else None
    out["sent_rps"] = len(rows) / seconds if seconds else None
    for q in (50, 90, 99):
        out[f"p{q}_ms"] = pct(latencies, q)
    out["max_ms"] = max(latencies, default=None)
    out["wait_p99_ms"] = pct([o.wait_ms for o in rows], 99)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the balancer, e.g. http://127.0.0.1:8800")
    parser.add_argument("--rate", type=float, default=LoadPlan.rate)
    parser.add_argument("--seconds", type=float, default=LoadPlan.seconds)
    parser.add_argument("--corrections", type=float, default=LoadPlan.correction_share)
    parser.add_argument("--regions", default="spb", help="comma-separated, the default first")
    parser.add_argument("--other-region-share", type=float, default=LoadPlan.other_region_share)
    parser.add_argument("--connections", type=int, default=LoadPlan.connections)
    parser.add_argument("--timeout", type=float, default=LoadPlan.timeout_s)
    parser.add_argument("--out", type=Path, required=True, help="where the JSON goes")
    args = parser.parse_args()
    plan = LoadPlan(
        rate=args.rate,
        seconds=args.seconds,
        correction_share=args.corrections,
        regions=tuple(r.strip() for r in args.regions.split(",") if r.strip()),
        other_region_share=args.other_region_share,
        connections=args.connections,
        timeout_s=args.timeout,
    )
    try:  # uvloop (a uvicorn[standard] dependency) costs a third of asyncio's CPU per request
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        run_load(
            args.url,
            plan,
            predict_token=os.environ.get("CUR_ML_PREDICT_TOKEN") or None,
            operator_token=os.environ.get("CUR_ML_OPERATOR_TOKEN")
            or os.environ.get("CUR_ML_ADMIN_TOKEN")
            or None,
            # The drill acts at moments counted from here: one line on stdout, at once.
            on_start=lambda t: print(json.dumps({"started_at": t}), flush=True),
        )
    )
    args.out.write_text(json.dumps(result), encoding="utf-8")
    s = result["summary"]
    print(
        json.dumps(
            {k: v for k, v in s.items() if k != "correction"}
            | {"correction": {k: v for k, v in s["correction"].items() if k != "acknowledged_ids"}}
            | {"generator_cpu_ms_per_request": result["generator_cpu_ms_per_request"]}
        )
    )


if __name__ == "__main__":
    main()
