"""The CI helpers beside .ci/run: the lock check and the audit's offline OSV database."""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.request
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

CI = Path(__file__).resolve().parent.parent / ".ci"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"ci_{name}", CI / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


audit = _load("audit")
check_lock = _load("check_lock")


def _record(vid: str, name: str, *, versions=(), events=(), ecosystem="PyPI") -> dict:
    affected = {"package": {"name": name, "ecosystem": ecosystem}, "versions": list(versions)}
    if events:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": list(events)}]
    return {"id": vid, "summary": vid, "affected": [affected]}


FIXED_315 = ({"introduced": "0"}, {"fixed": "3.1.5"})
LAST_316 = ({"introduced": "3.0"}, {"last_affected": "3.1.6"})
TWO_RANGES = ({"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "3.1"}, {"fixed": "3.2"})


@pytest.mark.parametrize(
    ("record", "version", "expected"),
    [
        (_record("listed", "jinja2", versions=["3.1.6"]), "3.1.6", True),
        (_record("listed", "jinja2", versions=["3.1.5"]), "3.1.6", False),
        (_record("fixed", "jinja2", events=FIXED_315), "3.1.4", True),
        (_record("fixed", "jinja2", events=FIXED_315), "3.1.5", False),
        (_record("last", "jinja2", events=LAST_316), "3.1.6", True),
        (_record("last", "jinja2", events=LAST_316), "3.1.7", False),
        (_record("last", "jinja2", events=LAST_316), "2.11", False),
        (_record("two", "jinja2", events=TWO_RANGES), "1.5", False),
        (_record("two", "jinja2", events=TWO_RANGES), "3.1.6", True),
        (_record("name", "Jinja2", versions=["3.1.6"]), "3.1.6", True),  # names compared canonical
        (_record("npm", "jinja2", versions=["3.1.6"], ecosystem="npm"), "3.1.6", False),
    ],
)
def test_osv_records_affect_the_versions_they_name(record, version, expected):
    assert audit.affects(record, "jinja2", version) is expected


def test_the_offline_osv_answers_pip_audits_query(tmp_path):
    dump = tmp_path / "PyPI.zip"
    records = [
        _record(
            "GHSA-1", "Jinja2", versions=["3.1.6"], events=({"introduced": "0"}, {"fixed": "3.1.7"})
        ),
        _record("GHSA-2", "jinja2", events=FIXED_315),
        _record("GHSA-3", "flask", versions=["3.1.6"]),  # not a package of the lock
    ]
    with zipfile.ZipFile(dump, "w") as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))

    index = audit.load_dump(dump, {"jinja2", "urllib3"})
    assert {r["id"] for r in index["jinja2"]} == {"GHSA-1", "GHSA-2"} and not index["urllib3"]

    server = audit.serve_dump(index)
    try:

        def query(name: str, version: str) -> dict:
            body = {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.server_address[1]}/v1/query",
                data=json.dumps(body).encode(),
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())

        (vuln,) = query("jinja2", "3.1.6")["vulns"]
        # pip-audit reads fixed versions only under the canonical name.
        assert vuln["id"] == "GHSA-1" and vuln["affected"][0]["package"]["name"] == "jinja2"
        assert query("jinja2", "3.1.7") == {}
        assert query("urllib3", "2.8.0") == {}
    finally:
        server.shutdown()


def test_the_lock_check_reads_pins_under_their_markers(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# header\n"
        "numpy==2.4.6 ; python_full_version < '3.12'\n"
        "numpy==2.5.5 ; python_full_version >= '3.12'\n"
        "    # via cur-ml (pyproject.toml)\n"
        "pywin32==311 ; sys_platform == 'win32'\n"
        "Jinja2==3.1.6\n"
    )
    pins = {name: str(version) for name, version in check_lock.pins(lock).items()}
    here = "2.4.6" if sys.version_info < (3, 12) else "2.5.5"
    assert pins == {"numpy": here, "jinja2": "3.1.6"}
