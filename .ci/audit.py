"""pip-audit over requirements.lock that says plainly what it could not check.

Run by `.ci/audit` with the interpreter of a tool venv that holds pip-audit. The sources are
tried in turn until one answers for every pin of the lock:

1. PyPI's vulnerability data (pip-audit's default service);
2. the OSV API;
3. a dump of OSV's PyPI advisories on disk (CUR_ML_AUDIT_OSV_ZIP, else a cache refreshed from
   OSV's bucket whenever it can be reached), served to pip-audit on a loopback port.

Exit 1 when a known vulnerability is found (IDs listed in .ci/audit-ignore excepted); exit 0
when none is, and also when no source could be reached: then it says so, it does not pass.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.client import HTTPException
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

OSV_DUMP_URL = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
BUDGET_S = 300.0  # the whole audit, whatever the network does: CI must stay under 20 min
HERE = Path(__file__).resolve().parent


@dataclass
class Outcome:
    source: str
    checked: dict[str, str] = field(default_factory=dict)  # name → version
    vulns: list[tuple[str, str, dict]] = field(default_factory=list)  # name, version, vuln
    unchecked: dict[str, str] = field(default_factory=dict)  # name → why
    failure: str | None = None  # the source gave no answer at all


def run_pip_audit(lock: Path, source: str, args: list[str], timeout: float) -> Outcome:
    """One pip-audit run; its JSON report read into an Outcome."""
    outcome = Outcome(source)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            *(sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip"),
            *("--progress-spinner", "off", "--timeout", "20", "-f", "json", "-o", str(report)),
            *(f"--ignore-vuln={vid}" for vid in ignored()),
            *args,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            outcome.failure = f"no answer within {timeout:.0f} s"
            return outcome
        if not report.exists():  # a service error ends pip-audit before it writes a report
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            outcome.failure = lines[-1][:300] if lines else f"pip-audit exited {done.returncode}"
            return outcome
        data = json.loads(report.read_text(encoding="utf-8"))
    for dep in data["dependencies"]:
        if "skip_reason" in dep:
            outcome.unchecked[dep["name"]] = dep["skip_reason"]
            continue
        outcome.checked[dep["name"]] = dep["version"]
        outcome.vulns.extend((dep["name"], dep["version"], vuln) for vuln in dep["vulns"])
    if outcome.unchecked and not outcome.checked:
        # PyPI's per-release JSON answered 404 for packages pip has just installed from PyPI:
        # the API is out of reach (a mirror or proxy), not the packages unknown.
        why = next(iter(outcome.unchecked.values()))
        outcome.failure = f"none of {len(outcome.unchecked)} packages could be checked ({why})"
    return outcome


def locked_names(lock: Path) -> set[str]:
    """Every package the lock pins, whatever its environment marker."""
    lines = (line.strip() for line in lock.read_text(encoding="utf-8").splitlines())
    return {
        canonicalize_name(re.split(r"[=<>!~;\[ ]", line)[0]) for line in lines if line[:1].isalnum()
    }


def ignored() -> list[str]:
    """Vulnerability IDs accepted in .ci/audit-ignore (`ID  why`, one a line)."""
    path = HERE / "audit-ignore"
    if not path.exists():
        return []
    lines = (line.split("#", 1)[0].split() for line in path.read_text().splitlines())
    return [words[0] for words in lines if words]


# --- the OSV dump on disk -------------------------------------------------------------------


def _key(version: str) -> Version:
    return Version("0") if version == "0" else Version(version)


def affects(record: dict, name: str, version: str) -> bool:
    """Whether an OSV record lists this PyPI package version as affected (versions or ranges)."""
    try:
        wanted = Version(version)
    except InvalidVersion:
        return False
    for affected in record.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != "PyPI" or canonicalize_name(package["name"]) != name:
            continue
        if version in affected.get("versions", []):
            return True
        for rng in affected.get("ranges", []):
            if rng.get("type") == "ECOSYSTEM" and _in_range(rng.get("events", []), wanted):
                return True
    return False


def _in_range(events: list[dict], wanted: Version) -> bool:
    """OSV's range walk: events in version order flip the state up to the wanted version."""
    steps = []
    for event in events:
        for kind, at in event.items():
            try:
                steps.append((_key(at), kind))
            except InvalidVersion:
                return False
    state = False
    for at, kind in sorted(steps, key=lambda step: step[0]):
        if kind == "introduced" and at <= wanted:
            state = True
        elif kind == "fixed" and at <= wanted:
            state = False
        elif kind == "last_affected" and at < wanted:
            state = False
    return state


def load_dump(path: Path, names: Iterable[str]) -> dict[str, list[dict]]:
    """The records of a dump (a zip of OSV JSON files) that name one of these packages."""
    wanted = set(names)
    index: dict[str, list[dict]] = {name: [] for name in wanted}
    with zipfile.ZipFile(path) as dump:
        for entry in dump.namelist():
            record = json.loads(dump.read(entry))
            named = {
                canonicalize_name(a["package"]["name"])
                for a in record.get("affected", [])
                if a.get("package", {}).get("ecosystem") == "PyPI"
            }
            for name in named & wanted:
                index[name].append(record)
    return index


def serve_dump(index: dict[str, list[dict]]) -> ThreadingHTTPServer:
    """A loopback stand-in for OSV's /v1/query, answering from the dump."""

    class Query(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            name = canonicalize_name(query["package"]["name"])
            version = query["version"]
            found = [_named(r, name) for r in index.get(name, []) if affects(r, name, version)]
            body = json.dumps({"vulns": found} if found else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # quiet: the report says what matters
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Query)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _named(record: dict, name: str) -> dict:
    """The record with this package's name in canonical form: pip-audit reads fixed versions
    only from the `affected` entry whose name equals the canonical one (`Jinja2` ≠ `jinja2`)."""
    affected = [
        {**a, "package": {**a["package"], "name": name}}
        if canonicalize_name(a.get("package", {}).get("name", "")) == name
        else a
        for a in record.get("affected", [])
    ]
    return {**record, "affected": affected}


def dump_path(timeout: float) -> tuple[Path | None, str]:
    """The dump to use and how fresh it is; the cache is refreshed when OSV can be reached."""
    if os.environ.get("CUR_ML_AUDIT_OSV_ZIP"):
        path = Path(os.environ["CUR_ML_AUDIT_OSV_ZIP"])
        return (path, f"{path}") if path.is_file() else (None, f"{path} does not exist")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cur-ml" / "osv"
    path = cache / "PyPI.zip"
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    try:
        with urllib.request.urlopen(OSV_DUMP_URL, timeout=min(timeout, 60)) as answer:
            partial.write_bytes(answer.read())
        if not zipfile.is_zipfile(partial):  # a proxy's error page must not replace the cache
            raise ValueError("the answer is not a zip file")
        partial.replace(path)
        return path, f"{path}, downloaded now"
    except (OSError, HTTPException, ValueError) as exc:
        if not path.is_file():
            return None, f"no dump cached at {path}, and {OSV_DUMP_URL} failed: {exc}"
        age = (time.time() - path.stat().st_mtime) / 86400
        return path, f"{path}, cached {age:.1f} days ago ({OSV_DUMP_URL} failed: {exc})"


def from_dump(lock: Path, names: Iterable[str], timeout: float) -> Outcome:
    path, how = dump_path(timeout)
    if path is None:
        return Outcome("an OSV dump on disk", failure=how)
    try:
        index = load_dump(path, names)
    except (OSError, zipfile.BadZipFile, ValueError, KeyError, TypeError) as exc:
        return Outcome("an OSV dump on disk", failure=f"{path} is unreadable: {exc!r}")
    server = serve_dump(index)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/query"
        outcome = run_pip_audit(
            lock, f"the OSV dump {how}", ["-s", "osv", "--osv-url", url], timeout
        )
    finally:
        server.shutdown()
    return outcome


# --- the report -----------------------------------------------------------------------------


def report(lock: Path, tried: list[Outcome]) -> int:
    for outcome in tried:
        if outcome.failure:
            print(f"audit: {outcome.source}: could not check: {outcome.failure}")
            continue
        if outcome.unchecked:
            why = next(iter(outcome.unchecked.values()))
            print(
                f"audit: {outcome.source}: {len(outcome.checked)} checked, "
                f"{len(outcome.unchecked)} could not be checked (e.g. {why})"
            )
    best = max(tried, key=lambda outcome: len(outcome.checked))
    if not best.checked:
        print(
            f"AUDIT NOT DONE: no package of {lock} was checked for known vulnerabilities — "
            "no vulnerability database answered (see above). CI goes on without it."
        )
        return 0
    unchecked = ", ".join(sorted(best.unchecked)) or "none"
    if best.vulns:
        print(f"VULNERABLE: {len(best.vulns)} known vulnerabilities in {lock} ({best.source}):")
        for name, version, vuln in best.vulns:
            ids = ", ".join([vuln["id"], *vuln.get("aliases", [])])
            fixed = ", ".join(vuln["fix_versions"]) or "no fixed release"
            line = f"  {name} {version}: {ids}; fixed in {fixed}; {vuln.get('description', '')}"
            print(line[:400])
        print(
            f"Not checked: {unchecked}. Move the pin (.ci/lock --upgrade-package NAME) or, if it "
            "does not apply here, add the ID and why to .ci/audit-ignore."
        )
        return 1
    print(
        f"audit: no known vulnerability in the {len(best.checked)} packages checked "
        f"({best.source}); not checked: {unchecked}"
    )
    return 0


def main(lock: Path) -> int:
    deadline = time.monotonic() + BUDGET_S
    tried: list[Outcome] = []
    sources = [
        lambda left: run_pip_audit(lock, "PyPI's vulnerability data", [], left),
        lambda left: run_pip_audit(lock, "the OSV API", ["-s", "osv"], left),
        lambda left: from_dump(lock, locked_names(lock), left),
    ]
    for source in sources:
        left = deadline - time.monotonic()
        if left < 10:
            tried.append(Outcome("the remaining sources", failure="the audit's time ran out"))
            break
        outcome = source(left)
        tried.append(outcome)
        if not outcome.failure and not outcome.unchecked:  # every pin checked
            break
    return report(lock, tried)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock")))
