"""The cluster's supervisor: starts every process of the plan, restarts one that dies, stops
them all on SIGTERM. Run in the background by `up` (`python -m cur_ml.deploy.supervisor DIR`).

- Each child runs in a process group of its own: a child that dies takes its stragglers with
  it (mlflow's uvicorn, a replica's large-lane process), so its port is free for the restart.
- A child that dies is started again after 0.5 s; one that keeps dying within 10 s of its
  start waits longer each time (up to 10 s), so a broken setting does not spin the CPU.
- SIGHUP: read the plan again, start what is new, restart what changed, stop what is gone.
- SIGTERM / SIGINT: stop nginx, then the replicas and the worker, then MLflow; each gets
  SIGTERM and its `stop_seconds`, then SIGKILL.
- `<state>/supervisor.json` always says who runs: pid, start, restarts, last exit per child.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cur_ml.deploy.config import ClusterConfig
from cur_ml.deploy.plan import ProcessSpec, base_env, read_plan
from cur_ml.deploy.probe import alive
from cur_ml.deploy.tokens import load_tokens, token_env

__all__ = ["STOP_ORDER", "Supervisor", "main", "stop_group"]

log = logging.getLogger("cur_ml.deploy.supervisor")

#: Stopped tier by tier: nothing new comes in, then the API and the worker end their work,
#: then the registry they were talking to.
STOP_ORDER = (("nginx",), ("replica", "worker"), ("mlflow",))
_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 10.0
_SHORT_LIFE = 10.0
_TICK = 0.2


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(pid: int, stop_seconds: float) -> None:
    """SIGTERM to `pid` (a group leader), wait for it, then SIGKILL its whole group."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + stop_seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)


@dataclass
class Child:
    spec: ProcessSpec
    proc: subprocess.Popen | None = None
    started_at: str | None = None
    started_mono: float = 0.0
    restarts: int = 0
    last_exit: int | None = None
    next_start: float | None = 0.0  # monotonic time of the next start; None: running
    backoff: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    def record(self) -> dict:
        spec = self.spec
        return {
            "name": spec.name,
            "role": spec.role,
            "port": spec.port,
            "pid": self.pid,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "log": spec.log,
        }


def _become_subreaper() -> None:
    """Orphans of a child (its own children, when it died first) become ours to reap, so none
    is left a zombie (PR_SET_CHILD_SUBREAPER; Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        log.info("cannot become a child subreaper; orphans are reaped by init")


class Supervisor:
    """Keeps the processes of `<state>/plan.json` running."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.children: dict[str, Child] = {}
        self.stopping = False
        self.reload = False
        self._secrets: dict[str, str] | None = None
        self._dirty = True

    # --- signals ----------------------------------------------------------------
    def _on_stop(self, signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        self.stopping = True

    def _on_reload(self, _signum: int, _frame: object) -> None:
        self.reload = True

    # --- children ---------------------------------------------------------------
    def _env(self, spec: ProcessSpec) -> dict[str, str]:
        env = {**base_env(), **spec.env}
        if spec.secrets:
            if self._secrets is None:
                self._secrets = token_env(load_tokens(self.config.tokens_file))
            env.update(self._secrets)
        return env

    def _start(self, child: Child) -> None:
        spec = child.spec
        logfile = self.config.state_dir / spec.log
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(logfile, "ab") as out:
            out.write(f"--- {_now()} supervisor: starting {spec.name}\n".encode())
            out.flush()
            child.proc = subprocess.Popen(
                spec.argv,
                env=self._env(spec),
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,  # its own group: stopped, and cleaned up, as a whole
            )
        child.started_at = _now()
        child.started_mono = time.monotonic()
        child.next_start = None
        self._dirty = True
        log.info("started %s (pid %s)", spec.name, child.proc.pid)

    def _reap(self) -> None:
        """Collect every exited process (children and adopted orphans); schedule restarts."""
        by_pid = {c.proc.pid: c for c in self.children.values() if c.pid is not None}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = by_pid.get(pid)
            if child is None or child.proc is None:
                continue  # an adopted orphan
            code = os.waitstatus_to_exitcode(status)
            child.proc.returncode = code
            child.last_exit = code
            _signal_group(pid, signal.SIGKILL)  # stragglers would hold its port
            self._dirty = True
            if self.stopping:
                continue
            lived = time.monotonic() - child.started_mono
            child.backoff = (
                min(max(child.backoff * 2, _FIRST_BACKOFF), _MAX_BACKOFF)
                if lived < _SHORT_LIFE
                else _FIRST_BACKOFF
            )
            child.next_start = time.monotonic() + child.backoff
            child.restarts += 1
            log.warning(
                "%s (pid %s) exited with %s after %.1f s; restart in %.1f s",
                child.spec.name,
                pid,
                code,
                lived,
                child.backoff,
            )

    def _start_due(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.next_start is not None and child.next_start <= now:
                try:
                    self._start(child)
                except OSError as exc:  # a missing binary: said in the log, tried again
                    log.error("cannot start %s: %s", child.spec.name, exc)
                    child.backoff = _MAX_BACKOFF
                    child.next_start = now + child.backoff

    def _stop(self, children: list[Child]) -> None:
        """SIGTERM to each, wait up to its stop_seconds, then SIGKILL its group."""
        running = [c for c in children if c.pid is not None]
        for child in running:
            log.info("stopping %s (pid %s)", child.spec.name, child.pid)
            try:
                # os.kill, not Popen.send_signal: its poll() could reap the child behind
                # _reap's back.
                os.kill(child.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        started = time.monotonic()
        while running:
            self._reap()
            running = [c for c in running if c.pid is not None]
            late = [c for c in running if time.monotonic() - started > c.spec.stop_seconds]
            for child in late:
                log.warning(
                    "%s did not stop in %.0f s: SIGKILL", child.spec.name, child.spec.stop_seconds
                )
                _signal_group(child.proc.pid, signal.SIGKILL)
            time.sleep(0.1)
        for child in children:
            child.next_start = None
        self._dirty = True

    def _apply_plan(self) -> None:
        """Make the children those of the plan (start new, restart changed, stop removed)."""
        self._secrets = None  # the tokens file may have been made since
        wanted = {spec.name: spec for spec in read_plan(self.config.plan_file)}
        gone = [c for name, c in self.children.items() if name not in wanted]
        changed = [
            c for name, c in self.children.items() if name in wanted and wanted[name] != c.spec
        ]
        self._stop(gone + changed)
        for child in gone:
            del self.children[child.spec.name]
        for name, spec in wanted.items():
            if name in self.children and self.children[name].spec == spec:
                continue
            self.children[name] = Child(spec)  # started by _start_due
        # Plan order is start order.
        self.children = {name: self.children[name] for name in wanted}
        self._dirty = True

    # --- status -----------------------------------------------------------------
    def _write_status(self, state: str) -> None:
        record = {
            "pid": os.getpid(),
            "state": state,
            "updated_at": _now(),
            "processes": [c.record() for c in self.children.values()],
        }
        path = self.config.supervisor_file
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        self._dirty = False

    # --- main loop --------------------------------------------------------------
    def run(self) -> None:
        _become_subreaper()
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        self._apply_plan()
        while not self.stopping:
            if self.reload:
                self.reload = False
                log.info("SIGHUP: reading the plan again")
                self._apply_plan()
            self._reap()
            self._start_due()
            if self._dirty:
                self._write_status("running")
            time.sleep(_TICK)
        self._write_status("stopping")
        for roles in STOP_ORDER:
            self._stop([c for c in self.children.values() if c.spec.role in roles])
            self._write_status("stopping")
        self._stop(list(self.children.values()))  # any role not named above
        self._write_status("stopped")
        log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: python -m cur_ml.deploy.supervisor STATE_DIR")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s supervisor %(levelname)s %(message)s"
    )
    Supervisor(ClusterConfig.load(Path(args[0]))).run()


if __name__ == "__main__":
    main()
