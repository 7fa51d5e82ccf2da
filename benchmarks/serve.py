"""Serving benchmark: the issue's serving measures, today's figures beside ours, in one run.

Starts `cur_ml.api.server.serve` (uvicorn) in a subprocess on a free port with a model trained
on all real appeals (`--model`, default /tmp/fullmodel when present, else one is trained), and
drives it from separate load-generator processes (`_serve_load.py`):

- single appeals, open loop at `--rate` req/s for `--duration` s, 1 and 2 workers; latency
  counts from the moment a request was *due*, so a server that falls behind is not flattered;
- the same singles while another client sends `--big-batches` batches of `--big-appeals`
  texts of `--big-chars` characters (real dev-split appeals concatenated) back to back;
- cold start: process start → `/readyz` 200 (every worker, with 2);
- durability: SIGKILL under load (singles and batches), acknowledged `prediction_id`s missing
  from the store, SQLite and PostgreSQL;
- the cost of durable writes: the same open loop with the store on PostgreSQL, and the
  writer alone (`PredictionWriter.record`, the commit each answer waits for) on both stores;
- diagnostic: the open loop and the mixed load again with `model.predict` answering a canned
  prediction in the serving process — what the serving path costs whatever the model's speed;

each `--runs` times (medians reported), plus in-process `model.predict` and batch throughput
for reference. Payloads are real dev-split appeals with every input field.

    python benchmarks/serve.py                   # ~25 min: 3 runs of everything
    python benchmarks/serve.py --quick           # ~5 min: 1 run, 15 s loads, 20 big batches
    python benchmarks/serve.py --table out.json  # re-print a saved run (--json out.json)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from _serve_load import pct
from _serve_table import details, summary

from cur_ml.data import INPUT_COLUMNS

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "spb" / "appeals.csv.gz"
DEFAULT_MODEL = Path("/tmp/fullmodel")
LOADGEN = Path(__file__).resolve().parent / "_serve_load.py"
PG_URL = os.environ.get(
    "CUR_ML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: What a routing service sends: the caller's id and every input field of an appeal.
FIELDS = ("id", *INPUT_COLUMNS)


# ------------------------------------------------------------------- payloads
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


def big_batches(appeals: list[dict], batches: int, per: int, chars: int) -> list[dict]:
    """Bulk requests: texts of `chars` characters, each real appeals one after another."""
    rng = random.Random(0)
    texts = [a["text"] for a in appeals]
    out = []
    for b in range(batches):
        items = []
        for i in range(per):
            parts, size = [], 0
            while size < chars:
                parts.append(texts[rng.randrange(len(texts))])
                size += len(parts[-1]) + 2
            items.append({"id": f"bulk-{b}-{i}", "text": "\n\n".join(parts)[:chars]})
        out.append({"appeals": items})
    return out


# ------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmd(proc) -> str:
    try:
        return " ".join(proc.cmdline())
    except Exception:
        return ""


def rss_mb(pid: int, workers: int) -> dict[str, list[float]]:
    """RSS of the serving processes: the worker(s), and the large lane's child processes."""
    import psutil

    def mine(parent):
        return [c for c in parent.children() if "resource_tracker" not in _cmd(c)]

    root = psutil.Process(pid)
    serving = [root] if workers <= 1 else mine(root)
    lanes = [c for w in serving for c in mine(w)] if workers > 1 else mine(root)
    return {
        "workers": [p.memory_info().rss / 2**20 for p in serving],
        "lanes": [p.memory_info().rss / 2**20 for p in lanes],
    }


def _ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200  # a new connection
    except httpx.HTTPError:
        return False


#: Prepended to the server's code for the "serving path alone" rows: in the serving process,
#: `model.predict` hands out copies of one canned answer (a child process of the large lane,
#: started afresh, predicts for real).
CANNED = (
    "import copy; from cur_ml.model import bundle as _b; "
    "_c = _b.load_model({model!r}).predict([{{'text': 'Яма во дворе дома'}}], explain=True)[0]; "
    "_b.RoutingModel.predict = lambda self, records, explain=False: "
    "[copy.deepcopy(_c) for _ in records]; "
)


def _die_with_parent() -> None:
    """In a server process: SIGTERM when this benchmark dies, so no server outlives it."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except Exception:
        pass


def start_server(
    model: Path, workers: int, tmp: Path, database_url: str, name: str, canned: bool = False
) -> tuple[subprocess.Popen, str, float]:
    """A server on a free port; returns it, its URL and its cold start (every worker ready)."""
    port = free_port()
    env = {
        **os.environ,
        "CUR_ML_DATABASE_URL": database_url,
        "CUR_ML_MODEL_POLL_SECONDS": "0",
        "CUR_ML_PREDICT_TOKEN": "",
        "CUR_ML_MLFLOW_ENABLED": "false",
        "CUR_ML_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    code = (
        "from pathlib import Path; from cur_ml.api.server import serve; "
        f"serve(model_dir=Path({str(model)!r}), host='127.0.0.1', port={port}, workers={workers})"
    )
    if canned:
        code = CANNED.format(model=str(model)) + code
    log_path = tmp / f"server-{name}.log"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,
        )
    url = f"http://127.0.0.1:{port}"
    in_a_row = 0  # new connections: with 2 workers, both must answer ready
    while in_a_row < (1 if workers <= 1 else 20 * workers):
        if proc.poll() is not None:
            raise SystemExit(f"server exited; see {log_path}")
        if time.perf_counter() - started > 180:
            stop_server(proc)
            raise SystemExit(f"not ready in 180 s; see {log_path}")
        in_a_row = in_a_row + 1 if _ready(url) else 0
        if not in_a_row:
            time.sleep(0.01)
    return proc, url, time.perf_counter() - started


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def loadgen(mode: str, url: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(LOADGEN), mode, "--url", url, *args],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"load generator failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def large_outcomes(url: str) -> dict[str, float]:
    """How the server predicted the large requests (process / thread / busy), from /metrics."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("cur_ml_large_requests_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


# ------------------------------------------------------------------- stores
def reachable(url: str) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@contextmanager
def store(kind: str, tmp: Path, pg_url: str) -> Iterator[str]:
    """A fresh store: a SQLite file, or a schema of its own on the PostgreSQL server."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / f'store-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"cur_ml_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def durability(model: Path, tmp: Path, database_url: str, seconds: float) -> dict:
    """SIGKILL the server under load (singles and batches of 100 and 200, as the test does);
    how many acknowledged prediction_ids are not in the store."""
    import httpx
    from sqlalchemy import select

    from cur_ml.store import PredictionRecord, make_engine

    appeals = json.loads((tmp / "appeals.json").read_text(encoding="utf-8"))
    proc, url, _ = start_server(model, 1, tmp, database_url, "kill")
    acked: list[str] = []
    lock, stop = threading.Lock(), threading.Event()

    def client(size: int, offset: int) -> None:
        i = offset
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                body = {"appeals": [appeals[(i + k) % len(appeals)] for k in range(size)]}
                i += size
                try:
                    r = c.post("/v1/predict", json=body, params={"explain": "false"})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    with lock:
                        acked.extend(p["prediction_id"] for p in r.json()["predictions"])

    threads = [
        threading.Thread(target=client, args=(s, 997 * n)) for n, s in enumerate((1, 1, 100, 200))
    ]
    for t in threads:
        t.start()
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    stop.set()
    for t in threads:
        t.join(60)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = set(conn.scalars(select(PredictionRecord.prediction_id)))
    engine.dispose()
    return {"acknowledged": len(acked), "missing": sum(p not in stored for p in acked)}


def writer_cost(model: Path, appeals: list[dict], database_url: str) -> dict:
    """What a 2xx waits for: `PredictionWriter.record` of real prediction rows, one request at a
    time (single appeals, then batches of 500), on this store; nothing else runs meanwhile."""
    from cur_ml.model import load_model
    from cur_ml.store import PredictionRepository, PredictionWriter, make_engine, upgrade
    from cur_ml.store.predictions import prediction_row

    loaded = load_model(model)
    preds = loaded.predict(appeals[:500], explain=True)
    now = datetime.now(UTC)

    def rows(n: int) -> list[dict]:
        out = []
        for i in range(n):
            answer = {"prediction_id": str(uuid.uuid4()), **preds[i % len(preds)]}
            out.append(prediction_row(appeals[i % len(appeals)], answer, at=now))
        return out

    engine = make_engine(database_url)
    upgrade(engine)
    writer = PredictionWriter(PredictionRepository(engine)).start()
    try:
        for _ in range(20):  # warm-up: connection, statement cache
            writer.record(rows(1))
        singles = []
        for _ in range(500):
            batch = rows(1)
            t = time.perf_counter()
            writer.record(batch)
            singles.append(time.perf_counter() - t)
        bulk = []
        for _ in range(10):
            batch = rows(500)
            t = time.perf_counter()
            writer.record(batch)
            bulk.append(time.perf_counter() - t)
    finally:
        writer.close()
        engine.dispose()
    return {
        "single_p50_ms": pct(singles, 50) * 1e3,
        "single_p99_ms": pct(singles, 99) * 1e3,
        "batch500_p50_ms": pct(bulk, 50) * 1e3,
        "rows_per_s_batch500": 500 / statistics.median(bulk),
    }


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
        rounds = []
        for i in range(3):
            chunk = appeals[i * batch : (i + 1) * batch] or appeals[:batch]
            t = time.perf_counter()
            model.predict(chunk, explain=explain)
            rounds.append(len(chunk) / (time.perf_counter() - t))
        out[f"batch_appeals_per_s_explain_{explain}"] = statistics.median(rounds)
    return out


# -------------------------------------------------------------------- main
def train_into(data: Path, directory: Path) -> Path:
    from cur_ml.data import load_appeals
    from cur_ml.model.training import train_model

    print(f"training on every appeal of {data} ...", file=sys.stderr, flush=True)
    dataset = load_appeals([data])
    train_model(dataset).save(directory)
    return directory


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def one_run(args: argparse.Namespace, model: Path, tmp: Path, last: bool) -> dict:
    """Every HTTP measure once: 1 worker (singles, then mixed), 2 workers, 1 worker on
    PostgreSQL, and 1 worker with a canned `model.predict` (the serving path alone)."""
    run: dict = {}
    open_args = ["--appeals-file", str(tmp / "appeals.json"), "--rate", str(args.rate)]
    open_args += ["--duration", str(args.duration), "--connections", str(args.connections)]
    configs = [(f"{w}w-sqlite", w, "sqlite") for w in args.workers]
    if args.pg:
        configs.append(("1w-postgresql", 1, "postgresql"))
    if args.canned:
        configs.append(("1w-sqlite-canned", 1, "sqlite"))
    for key, workers, kind in configs:
        canned = key.endswith("canned")
        with store(kind, tmp, args.postgres) as url_db:
            proc, url, cold = start_server(model, workers, tmp, url_db, key, canned)
            try:
                say(f"{key}: ready in {cold:.2f} s; singles {args.rate:.0f}/s × {args.duration}s")
                res = {"cold_start_s": cold, "single": loadgen("open", url, *open_args)}
                if workers == 1 and kind == "sqlite":
                    import httpx

                    bodies = json.loads((tmp / "big.json").read_text())
                    say(f"{key}: warm-up batch of the large lane, then mixed load")
                    httpx.post(f"{url}/v1/predict", json=bodies[0], timeout=600)
                    res["mixed"] = loadgen(
                        "open", url, *open_args, "--big-file", str(tmp / "big.json")
                    )
                    res["mixed"]["large_outcomes"] = large_outcomes(url)
                if last and kind == "sqlite" and not canned:
                    say(f"{key}: batches of {args.batch}")
                    res["batch"] = loadgen(
                        "batch",
                        url,
                        *open_args[:2],
                        "--batch",
                        str(args.batch),
                        "--rounds",
                        str(args.batch_rounds),
                        "--clients",
                        str(workers),
                    )
                res["rss_mb"] = rss_mb(proc.pid, workers)
            finally:
                stop_server(proc)
        run[key] = res
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model directory (default: /tmp/fullmodel)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 run, short loads")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=64, help="of the load generator")
    parser.add_argument("--big-batches", type=int, default=100)
    parser.add_argument("--big-appeals", type=int, default=20, help="texts per bulk batch")
    parser.add_argument("--big-chars", type=int, default=10_000, help="characters per text")
    parser.add_argument("--kill-seconds", type=float, default=4.0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batch-rounds", type=int, default=10)
    parser.add_argument("--postgres", default=PG_URL, help="server for the PostgreSQL rows")
    parser.add_argument(
        "--no-canned",
        dest="canned",
        action="store_false",
        help="leave out the rows of the serving path alone (canned model.predict)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--table", type=Path, help="only print the tables of a --json file")
    args = parser.parse_args()
    if args.table:
        saved = json.loads(args.table.read_text())
        print(summary(saved), details(saved), sep="\n\n")
        return
    if args.quick:
        args.runs, args.duration, args.big_batches = 1, 15.0, 20
        args.kill_seconds, args.batch_rounds = 3.0, 4
    args.pg = reachable(args.postgres)
    if not args.pg:
        say(f"PostgreSQL not reachable at {args.postgres}: its rows are left out")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cur-ml-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or (DEFAULT_MODEL if DEFAULT_MODEL.is_dir() else None)
        model = model or train_into(args.data, tmp / "model")
        appeals = dev_appeals(args.data)
        (tmp / "appeals.json").write_text(json.dumps(appeals, ensure_ascii=False), "utf-8")
        big = big_batches(appeals, args.big_batches, args.big_appeals, args.big_chars)
        (tmp / "big.json").write_text(json.dumps(big, ensure_ascii=False), "utf-8")
        say(f"model {model}; {len(appeals)} dev appeals; in-process reference")
        result: dict = {
            "machine": _machine(),
            "model": str(model),
            "args": {k: str(v) for k, v in vars(args).items()},
            "in_process": in_process(model, appeals, args.batch),
            "runs": [],
            "durability": {},
            "writer": {},
        }
        for r in range(args.runs):
            say(f"run {r + 1} of {args.runs}")
            result["runs"].append(one_run(args, model, tmp, last=r == args.runs - 1))
            save(result, args.json)  # a run cut short still leaves what it measured
        for kind in ("sqlite", "postgresql") if args.pg else ("sqlite",):
            result["writer"][kind] = []
            result["durability"][kind] = []
            for r in range(args.runs):
                say(f"SIGKILL under load, {kind}, {r + 1} of {args.runs}")
                with store(kind, tmp, args.postgres) as url_db:
                    result["durability"][kind].append(
                        durability(model, tmp, url_db, args.kill_seconds)
                    )
                with store(kind, tmp, args.postgres) as url_db:
                    result["writer"][kind].append(writer_cost(model, appeals, url_db))
                save(result, args.json)
        result["seconds"] = time.perf_counter() - started
        result["machine_after"] = _machine()
    save(result, args.json)
    print(summary(result))
    print()
    print(details(result))


def save(result: dict, path: Path | None) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=2))


def _machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, python {sys.version.split()[0]}, load average {load}"


if __name__ == "__main__":
    main()
