"""The model's answers do not change when the serving code does.

`tests/data/golden/` holds a demo model and what the code before the serving-path
speed work answered with it (`make_golden.py`): today's vectorised path must give
the same labels, alternatives, review reasons, places and explanations, and the
same confidences to 1e-6.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cur_ml.model.bundle import load_model

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


@pytest.fixture(scope="module")
def golden(golden_model_dir) -> tuple[list[dict], list[dict], list[dict]]:
    appeals = json.loads((GOLDEN / "appeals.json").read_text())
    expected = json.loads((GOLDEN / "predictions.json").read_text())
    model = load_model(golden_model_dir)  # the bundled (unsigned) model, adopted explicitly
    return appeals, expected, model.predict(appeals, explain=True)


def _numbers_close(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ: numbers by more than 1e-6, anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _numbers_close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in _numbers_close(x, y, f"{path}[{i}]")]
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return [] if math.isclose(a, b, rel_tol=0, abs_tol=1e-6) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_same_answers_as_the_reference(golden) -> None:
    appeals, expected, got = golden
    assert len(got) == len(expected) == len(appeals)
    differences = []
    for appeal, want, have in zip(appeals, expected, got, strict=True):
        if not appeal.get("created_at"):  # the deadline counts from now
            want, have = dict(want), dict(have)
            want.pop("due_at"), have.pop("due_at")
        differences += [f"{appeal['id']}{d}" for d in _numbers_close(have, want)]
    assert not differences, "\n".join(differences[:20])


def test_every_profile_and_edge_case_is_covered(golden) -> None:
    appeals, _, got = golden
    ids = {a["id"].split("-")[0] for a in appeals}
    assert {"portal", "geo", "text", "social", "empty", "tags"} <= ids
    assert any(p["place"]["district"] is None for p in got)  # the no-place agency path
    assert any(p["place"]["district"] for p in got)


def test_no_confidence_is_nan(golden) -> None:
    """A map point on a building the training rows never showed used to give NaN."""
    _, _, got = golden
    for p in got:
        assert all(math.isfinite(c) for c in p["confidence"].values()), p["id"]
