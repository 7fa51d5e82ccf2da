"""Load generators of `serve.py`, run in a process of their own (they must not share a GIL with
the orchestrator, nor cost the server much CPU on a shared machine).

    python benchmarks/_serve_load.py open  --url URL --appeals-file F --rate R --duration S
    python benchmarks/_serve_load.py open  ... --big-file B     # singles until B's batches are done
    python benchmarks/_serve_load.py big   --url URL --big-file B
    python benchmarks/_serve_load.py batch --url URL --appeals-file F --batch N --rounds K

Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["pct"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


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


async def open_loop(
    url: str,
    appeals: list[dict],
    rate: float,
    duration: float,
    connections: int,
    until: Callable[[], bool] | None = None,
) -> dict:
    """Single appeals at `rate` req/s for `duration` s (or until `until()` is true). Request i
    is due at start + i / rate whether or not the server keeps up, and its latency counts from
    that moment (no coordinated omission)."""
    where = urlsplit(url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    raws = [_request(host, port, json.dumps({"appeals": [a]}).encode()) for a in appeals]
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
    errors.clear()
    start = time.perf_counter() + 0.05
    n = 0
    while True:
        due = start + n / rate
        if (until is None and n >= rate * duration) or (until is not None and until()):
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((n, due))
        n += 1
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return {
        "requests": n,
        "seconds": elapsed,
        "achieved_rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 50) * 1e3,
        "p90_ms": pct(latencies, 90) * 1e3,
        "p99_ms": pct(latencies, 99) * 1e3,
        "max_ms": max(latencies, default=float("nan")) * 1e3,
        "sent_p50_ms": pct(from_send, 50) * 1e3,
        "sent_p99_ms": pct(from_send, 99) * 1e3,
        "errors": n - len(latencies),
        "error_kinds": errors,
    }


def big_client(url: str, bodies: list[bytes]) -> dict:
    """The bulk caller: its batches back to back, one connection; statuses and times."""
    import httpx

    statuses: dict[str, int] = {}
    times: list[float] = []
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        for body in bodies:
            t = time.perf_counter()
            r = client.post("/v1/predict", content=body, headers=headers)
            times.append(time.perf_counter() - t)
            statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
            if r.status_code == 503:  # busy: honour Retry-After, as a client should
                time.sleep(float(r.headers.get("retry-after", "1")))
    return {
        "batches": len(bodies),
        "seconds": time.perf_counter() - started,
        "batch_p50_s": pct(times, 50),
        "batch_max_s": max(times, default=float("nan")),
        "statuses": statuses,
    }


def batches(
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
        with httpx.Client(base_url=url, timeout=300) as client:
            t = time.perf_counter()
            for raw in bodies:
                resp = client.post("/v1/predict", content=raw, headers=headers, params=params)
                if resp.status_code == 200 and resp.content.count(b'"prediction_id"') == batch:
                    sent += batch
                else:
                    errors += 1
            return sent, time.perf_counter() - t, errors

    def warm(_: int) -> None:  # a connection each: every worker's large lane gets started
        httpx.post(
            f"{url}/v1/predict", content=body(0), headers=headers, params=params, timeout=300
        )

    with ThreadPoolExecutor(3 * clients) as pool:
        list(pool.map(warm, range(3 * clients)))
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


def _bodies(path: str) -> list[bytes]:
    return [json.dumps(b, ensure_ascii=False).encode() for b in json.loads(Path(path).read_text())]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["open", "big", "batch"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--appeals-file")
    parser.add_argument("--big-file")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=1)
    args = parser.parse_args()
    if args.mode == "big":
        print(json.dumps(big_client(args.url, _bodies(args.big_file))))
        return
    appeals = json.loads(Path(args.appeals_file).read_text(encoding="utf-8"))
    if args.mode == "batch":
        out = {
            f"explain_{explain}": batches(
                args.url, appeals, args.batch, args.rounds, args.clients, explain
            )
            for explain in (True, False)
        }
        print(json.dumps(out))
        return
    if args.big_file is None:
        out = asyncio.run(open_loop(args.url, appeals, args.rate, args.duration, args.connections))
        print(json.dumps(out))
        return
    # Mixed: the bulk caller in a process of its own; singles for exactly as long as it runs.
    big = subprocess.Popen(
        [sys.executable, __file__, "big", "--url", args.url, "--big-file", args.big_file],
        stdout=subprocess.PIPE,
        text=True,
    )
    single = asyncio.run(
        open_loop(
            args.url, appeals, args.rate, 0, args.connections, until=lambda: big.poll() is not None
        )
    )
    print(json.dumps({"single": single, "big": json.loads(big.communicate()[0])}))


if __name__ == "__main__":
    main()
