"""JSON Lines in → predictions out, in batches; a bad line gets an error line, not a crash."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TextIO

from cur_ml.model.bundle import RoutingModel

__all__ = ["parse_appeal_line", "predict_lines"]


def parse_appeal_line(line: str, max_chars: int = 20_000) -> dict:
    """One JSONL line → an appeal dict; raises ValueError naming the problem."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str):
        raise ValueError(
            "field 'text' is missing"
            if text is None
            else f"field 'text' must be a string, got {type(text).__name__}"
        )
    if len(text) > max_chars:
        raise ValueError(f"field 'text' has {len(text)} characters, the limit is {max_chars}")
    return record


def _batches(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(lines)
    while batch := list(islice(it, size)):
        yield batch


def predict_lines(
    model: RoutingModel, src: TextIO, dst: TextIO, *, batch_size: int = 1000, explain: bool = False
) -> int:
    """Write one prediction (or error) line per non-blank input line; return the error count."""
    bad, line_no = 0, 0
    for batch in _batches((ln for ln in src if ln.strip()), batch_size):
        parsed: list[dict | str] = []
        for line in batch:
            line_no += 1
            try:
                parsed.append(parse_appeal_line(line))
            except ValueError as exc:
                parsed.append(f"line {line_no}: {exc}")
        good = [p for p in parsed if isinstance(p, dict)]
        predictions = iter(model.predict(good, explain=explain))
        for item in parsed:
            if isinstance(item, dict):
                out = next(predictions)
            else:
                bad += 1
                out = {"id": None, "error": item, "model_version": model.version}
            dst.write(json.dumps(out, ensure_ascii=False) + "\n")
    return bad
