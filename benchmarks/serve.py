"""Serving benchmark: cold start, single-appeal latency at a fixed rate, batch throughput, memory.

Starts `cur_ml.api.server.serve` (uvicorn) in a subprocess on a free port with a model
trained on all real appeals (or `--model`), then drives it from a separate load-generator
process:

- cold start: process start → first 200 from /readyz;
- single appeals, open loop at `--rate` req/s for `--duration` s; latency is counted from
  the moment a request was *due*, so a server that falls behind is not flattered;
- batches of `--batch` appeals, back to back (appeals/s);
- RSS of each worker process;

and prints them next to in-process `model.predict` speed, so the HTTP overhead is visible.
Payloads are real appeals of the dev split.

    python benchmarks/serve.py                      # trains on ../shared (a few minutes)
    python benchmarks/serve.py --model models/spb --workers 1 2 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cur_ml.data import INPUT_COLUMNS

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "spb" / "appeals.csv.gz"
#: What a routing service sends: the caller's id and every input field of an appeal.
FIELDS = ("id", *INPUT_COLUMNS)


# ------------------------------------------------------------------ helpers
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker_pids(pid: int, workers: int) -> list[int]:
    """uvicorn with 1 worker serves in the process itself; with N, in N child processes."""
    if workers <= 1:
        return [pid]
    import psutil

    return [
        c.pid
        for c in psutil.Process(pid).children(recursive=True)
        if "resource_tracker" not in " ".join(c.cmdline())  # multiprocessing's helper
    ]


def dev_appeals(data: Path, limit: int = 5_000) -> list[dict]:
    """Real appeals of the dev split, input fields only (labels are never sent)."""
    from cur_ml.data import load_appeals

    frame = load_appeals([data], split="dev").frame.head(limit)
    out = []
    for rec in frame.to_dict("records"):
        appeal = {k: rec[k] for k in FIELDS if k in rec and rec[k] not in ("", None)}
        for k in ("lat", "lon"):
            v = appeal.get(k)
            if v is not None and not (isinstance(v, float) and v == v):
                appeal.pop(k)
            elif v is not None:
                appeal[k] = float(v)
        out.append(appeal)
    return out


# ------------------------------------------------------------- in process
def in_process(model_dir: Path, appeals: list[dict], batch: int) -> dict:
    from cur_ml.model import load_model

    model = load_model(model_dir)
    for a in appeals[:50]:
        model.predict([a], explain=True)
    out: dict = {}
    for explain in (True, False):
        times = []
        for a in appeals[:1_000]:
            t = time.perf_counter()
            model.predict([a], explain=explain)
            times.append(time.perf_counter() - t)
        out[f"single_p50_ms_explain_{explain}"] = pct(times, 50) * 1e3
        out[f"single_p99_ms_explain_{explain}"] = pct(times, 99) * 1e3
    for explain in (True, False):
        rounds = []
        for i in range(3):
            chunk = appeals[i * batch : (i + 1) * batch] or appeals[:batch]
            t = time.perf_counter()
            model.predict(chunk, explain=explain)
            rounds.append(len(chunk) / (time.perf_counter() - t))
        out[f"batch_appeals_per_s_explain_{explain}"] = statistics.median(rounds)
    return out


# ------------------------------------------------------------ load generator
class _Conn:
    """A bare keep-alive HTTP/1.1 connection: the load generator must cost far less CPU than
    the server it measures (an async HTTP library spends milliseconds per request at
    hundreds of connections, and would starve the server of a shared CPU)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _request(host: str, port: int, body: bytes) -> bytes:
    return (
        f"POST /v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _open_loop(
    url: str, appeals: list[dict], rate: float, duration: float, connections: int
) -> dict:
    from urllib.parse import urlsplit

    where = urlsplit(url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    raws = [_request(host, port, json.dumps({"appeals": [a]}).encode()) for a in appeals]
    n = int(rate * duration)
    latencies: list[float] = []  # from the moment each request was due
    from_send: list[float] = []  # from the moment it was written (no generator lag)
    errors: dict[str, int] = {}
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def worker() -> None:
        conn = _Conn(host, port)
        while (item := await queue.get()) is not None:
            i, due = item
            sent = time.perf_counter()
            try:
                status = await conn.post(raws[i % len(raws)])
            except Exception as exc:  # counted, and the connection is opened afresh
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                conn.close()
                continue
            if status == 200:
                done = time.perf_counter()
                latencies.append(done - due)
                from_send.append(done - sent)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1
        conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    for i in range(2 * connections):  # warm-up: connections and the server's caches
        queue.put_nowait((i, time.perf_counter()))
    while not queue.empty():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    latencies.clear()
    from_send.clear()
    # Open loop: request i is due at start + i / rate whether or not the server keeps up;
    # latency is counted from that moment (no coordinated omission).
    start = time.perf_counter() + 0.05
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return {
        "requests": n,
        "achieved_rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 50) * 1e3,
        "p90_ms": pct(latencies, 90) * 1e3,
        "p99_ms": pct(latencies, 99) * 1e3,
        "max_ms": max(latencies, default=float("nan")) * 1e3,
        "sent_p50_ms": pct(from_send, 50) * 1e3,
        "sent_p99_ms": pct(from_send, 99) * 1e3,
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


def _batches(
    url: str, appeals: list[dict], batch: int, rounds: int, clients: int, explain: bool
) -> dict:
    """Back-to-back batches per client; bodies encoded beforehand and answers only counted,
    so the client's own JSON work does not hide the server's throughput."""
    import httpx

    def body(start: int) -> bytes:
        start %= max(1, len(appeals) - batch)
        return json.dumps({"appeals": appeals[start : start + batch]}).encode()

    headers = {"Content-Type": "application/json"}
    params = {"explain": "true" if explain else "false"}

    def run(offset: int) -> tuple[int, float, int]:
        bodies = [body((offset * rounds + r) * batch) for r in range(rounds)]
        sent, errors = 0, 0
        with httpx.Client(base_url=url, timeout=120) as client:
            t = time.perf_counter()
            for raw in bodies:
                resp = client.post("/v1/predict", content=raw, headers=headers, params=params)
                if resp.status_code == 200 and resp.content.count(b'"prediction_id"') == batch:
                    sent += batch
                else:
                    errors += 1
            return sent, time.perf_counter() - t, errors

    from concurrent.futures import ThreadPoolExecutor

    with httpx.Client(base_url=url, timeout=120) as warm:
        warm.post("/v1/predict", content=body(0), headers=headers, params=params)
    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(run, range(clients)))
    wall = time.perf_counter() - t
    sent = sum(r[0] for r in results)
    return {
        "appeals_per_s": sent / wall,
        "request_s": statistics.median(r[1] / rounds for r in results),
        "errors": sum(r[2] for r in results),
    }


def loadgen_main(args: argparse.Namespace) -> None:
    """Runs in its own process; prints one JSON object."""
    appeals = json.loads(Path(args.appeals_file).read_text(encoding="utf-8"))
    single = asyncio.run(_open_loop(args.url, appeals, args.rate, args.duration, args.connections))
    batch = {
        explain: _batches(
            args.url, appeals, args.batch, args.batch_rounds, args.batch_clients, explain
        )
        for explain in (True, False)
    }
    print(json.dumps({"single": single, "batch": batch[True], "batch_no_explain": batch[False]}))


# ------------------------------------------------------------------ server
def start_server(model: Path, workers: int, port: int, tmp: Path) -> tuple[subprocess.Popen, float]:
    env = {
        **os.environ,
        "CUR_ML_DATABASE_URL": f"sqlite:///{tmp / f'bench-{workers}.sqlite3'}",
        "CUR_ML_MODEL_POLL_SECONDS": "0",
        "CUR_ML_PREDICT_TOKEN": "",
        "CUR_ML_LOG_LEVEL": "INFO",
    }
    code = (
        "from pathlib import Path; from cur_ml.api.server import serve; "
        f"serve(model_dir=Path({str(model)!r}), host='127.0.0.1', port={port}, workers={workers})"
    )
    log = open(tmp / f"server-{workers}.log", "wb")  # lives as long as the server
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)
    import httpx

    url = f"http://127.0.0.1:{port}/readyz"
    give_up = time.perf_counter() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited; see {tmp / f'server-{workers}.log'}")
        try:
            r = httpx.get(url, timeout=1)
            if r.status_code == 200:
                break
            if r.json().get("status") == "failed":
                stop_server(proc)
                raise SystemExit(f"the model did not load: {r.json().get('detail')}")
        except httpx.HTTPError:
            pass
        if time.perf_counter() > give_up:
            stop_server(proc)
            raise SystemExit(f"not ready in 120 s; see {tmp / f'server-{workers}.log'}")
        time.sleep(0.01)
    cold = time.perf_counter() - started
    if workers > 1:  # every worker must be ready, not just the first to answer
        deadline = time.time() + 60
        with httpx.Client() as client:
            oks = 0
            while oks < 20 * workers and time.time() < deadline:
                oks = oks + 1 if client.get(url).status_code == 200 else 0
    return proc, cold


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


# -------------------------------------------------------------------- main
def train_into(data: Path, directory: Path) -> Path:
    from cur_ml.data import load_appeals
    from cur_ml.model.training import train_model

    print(f"training on every appeal of {data} ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    dataset = load_appeals([data])
    model = train_model(dataset)
    model.save(directory)
    print(
        f"  {len(dataset.frame)} appeals, {time.perf_counter() - t:.0f} s → {directory}",
        file=sys.stderr,
    )
    return directory


def table(inproc: dict, runs: dict, args: argparse.Namespace) -> str:
    rows = [
        "| | cold start s | p50 ms | p90 ms | p99 ms | max ms | p50 / p99 ms from send "
        f"| errors | achieved req/s | batch {args.batch}: appeals/s | same, `explain=false` "
        "| RSS MB per worker |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| in-process `model.predict`, one appeal at a time | – "
        f"| {inproc['single_p50_ms_explain_True']:.2f} | – "
        f"| {inproc['single_p99_ms_explain_True']:.2f} | – | – | – | – "
        f"| {inproc['batch_appeals_per_s_explain_True']:.0f} "
        f"| {inproc['batch_appeals_per_s_explain_False']:.0f} | – |",
        f"| same, `explain=False` | – | {inproc['single_p50_ms_explain_False']:.2f} | – "
        f"| {inproc['single_p99_ms_explain_False']:.2f} | – | – | – | – | – | – | – |",
    ]
    for workers, r in runs.items():
        s, b, nb = r["single"], r["batch"], r["batch_no_explain"]
        rows.append(
            f"| HTTP, {workers} worker{'s' if int(workers) > 1 else ''}, open loop "
            f"{float(args.rate):.0f} req/s × {float(args.duration):.0f} s "
            f"| {r['cold_start_s']:.2f} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} "
            f"| {s['p99_ms']:.2f} | {s['max_ms']:.1f} | {s['sent_p50_ms']:.2f} / "
            f"{s['sent_p99_ms']:.2f} | {s['errors'] + b['errors'] + nb['errors']} "
            f"| {s['achieved_rps']:.0f} | {b['appeals_per_s']:.0f} | {nb['appeals_per_s']:.0f} "
            f"| {' / '.join(f'{m:.0f}' for m in r['rss_mb'])} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model directory (default: train one)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=64, help="of the load generator")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batch-rounds", type=int, default=10)
    parser.add_argument("--batch-clients", type=int, default=0, help="default: one per worker")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--table", type=Path, help="only print the table of a --json file")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--appeals-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        loadgen_main(args)
        return
    if args.table:
        saved = json.loads(args.table.read_text())
        print(table(saved["in_process"], saved["http"], argparse.Namespace(**saved["args"])))
        return

    with tempfile.TemporaryDirectory(prefix="cur-ml-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or train_into(args.data, tmp / "model")
        appeals = dev_appeals(args.data)
        appeals_file = tmp / "appeals.json"
        appeals_file.write_text(json.dumps(appeals, ensure_ascii=False), encoding="utf-8")
        print(f"payload: {len(appeals)} dev appeals of {args.data.name}", file=sys.stderr)
        inproc = in_process(model, appeals, args.batch)

        runs: dict[int, dict] = {}
        for workers in args.workers:
            port = free_port()
            proc, cold = start_server(model, workers, port, tmp)
            try:
                print(f"{workers} worker(s): ready in {cold:.2f} s; load ...", file=sys.stderr)
                gen = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--loadgen",
                        "--url",
                        f"http://127.0.0.1:{port}",
                        "--appeals-file",
                        str(appeals_file),
                        "--rate",
                        str(args.rate),
                        "--duration",
                        str(args.duration),
                        "--batch",
                        str(args.batch),
                        "--batch-rounds",
                        str(args.batch_rounds),
                        "--batch-clients",
                        str(args.batch_clients or workers),
                        "--connections",
                        str(args.connections),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(gen.stdout)
                result["cold_start_s"] = cold
                result["rss_mb"] = [rss_mb(p) for p in worker_pids(proc.pid, workers)]
                runs[workers] = result
            finally:
                stop_server(proc)

    out = {"in_process": inproc, "http": runs, "args": {k: str(v) for k, v in vars(args).items()}}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(table(inproc, runs, args))
    for workers, r in runs.items():
        if r["single"]["error_kinds"]:
            print(f"errors with {workers} worker(s): {r['single']['error_kinds']}")


if __name__ == "__main__":
    main()
