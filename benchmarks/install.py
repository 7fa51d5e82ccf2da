"""What a serving install costs, before and after a change of dependencies.

For each git revision: a clone in a temporary directory, a fresh venv with the README's serving
install (`pip install -e .`, with `-c requirements.lock` where the revision has one), then its
size, its package count, the first `cur-ml serve` (trains the default model) and cold starts
(`cur-ml serve` until `/readyz` answers 200, the model present), the revisions alternating so
that the machine's load falls on both alike. Medians are printed.

    .venv/bin/python benchmarks/install.py --before e50eda2^ --after HEAD --runs 5

Takes a few minutes per revision (the installs); needs the package registry.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as answer:
            return answer.status == 200
    except OSError:  # refused or 503 while it starts
        return False


def install(rev: str, root: Path) -> tuple[Path, float]:
    """A clone of `rev` with its own venv; returns the checkout and the install's seconds."""
    checkout = root / "src"
    subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", rev], check=True)
    subprocess.run(["python3", "-m", "venv", str(checkout / ".venv")], check=True)
    lock = ["-c", "requirements.lock"] if (checkout / "requirements.lock").exists() else []
    started = time.perf_counter()
    subprocess.run(
        [str(checkout / ".venv/bin/pip"), "install", "-q", "-e", ".", *lock],
        cwd=checkout,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return checkout, time.perf_counter() - started


def start(checkout: Path, log: Path) -> float:
    """Seconds from `cur-ml serve` to its first 200 on /readyz; the server is stopped after."""
    port = free_port()
    env = {**os.environ, "CUR_ML_LOG_LEVEL": "WARNING"}
    with log.open("ab") as out:
        started = time.perf_counter()
        server = subprocess.Popen(
            [str(checkout / ".venv/bin/cur-ml"), "serve", "--port", str(port)],
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        while not ready(f"http://127.0.0.1:{port}"):
            if server.poll() is not None:
                raise SystemExit(f"cur-ml serve exited with {server.returncode}; see {log}")
            if time.perf_counter() - started > 600:
                raise SystemExit(f"cur-ml serve not ready in 600 s; see {log}")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


def measure(checkout: Path) -> dict:
    venv = checkout / ".venv"
    size = subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True, check=True)
    listed = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    return {
        "venv_mib": int(size.stdout.split()[0]),
        "packages": len(names),
        "server_stack": sorted(names & {"flask", "gunicorn", "aiohttp", "docker", "pyarrow"}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision")
    parser.add_argument("--after", default="HEAD", help="git revision")
    parser.add_argument("--runs", type=int, default=5, help="cold starts per revision")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cur-ml-install-") as tmp:
        revs = {"before": args.before, "after": args.after}
        results: dict[str, dict] = {}
        checkouts: dict[str, Path] = {}
        for name, rev in revs.items():
            (Path(tmp) / name).mkdir()
            checkouts[name], seconds = install(rev, Path(tmp) / name)
            log = Path(tmp) / f"{name}.log"
            results[name] = {"rev": rev, "install_s": round(seconds, 1), **measure(checkouts[name])}
            results[name]["first_start_s"] = round(start(checkouts[name], log), 2)
            results[name]["starts_s"] = []
            print(name, json.dumps(results[name], ensure_ascii=False), flush=True)
        for _ in range(args.runs):
            for name, checkout in checkouts.items():
                cold = start(checkout, Path(tmp) / f"{name}.log")
                results[name]["starts_s"].append(round(cold, 2))
        for name, result in results.items():
            result["median_start_s"] = statistics.median(result["starts_s"])
            print(name, json.dumps(result, ensure_ascii=False))
        print("load average at the end:", " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
