"""Fails when the venv holds a distribution that requirements.lock does not pin at that version.

`pip install -c requirements.lock` pins only what the lock names: a dependency added to
pyproject.toml without `.ci/lock` would be installed at whatever version is newest that day.
Run with the venv's own interpreter: `.venv/bin/python .ci/check_lock.py requirements.lock`.
"""

from __future__ import annotations

import sys
from importlib.metadata import distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

# Installed by `python3 -m venv` itself, not resolved from the project.
NOT_LOCKED = {"pip", "setuptools", "cur-ml"}


def pins(lock: Path) -> dict[str, Version]:
    """Name → version of every pin of the lock whose environment marker holds here."""
    found: dict[str, Version] = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        (spec,) = req.specifier  # the lock holds `name==version` only
        found[canonicalize_name(req.name)] = Version(spec.version)
    return found


def main(lock: Path) -> int:
    locked = pins(lock)
    problems = []
    for dist in distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in NOT_LOCKED:
            continue
        if name not in locked:
            problems.append(f"{name} {dist.version} is installed but not in the lock")
        elif locked[name] != Version(dist.version):
            problems.append(f"{name} {dist.version} is installed, the lock pins {locked[name]}")
    if problems:
        print(f"{lock} is stale (run .ci/lock and commit it):", *problems, sep="\n  ")
        return 1
    print(f"{lock}: every installed package is pinned ({len(locked)} pins apply here)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock")))
