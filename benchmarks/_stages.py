"""Where the time of `model.predict` goes: CPU seconds per stage of the serving path.

Wraps the functions that make up a prediction with timers (no profiler overhead on
the code in between), runs the batches, and returns each stage's share of the total.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Stage name → (module path, attribute path) of the function whose time it is.
STAGES: dict[str, tuple[str, str]] = {
    "preprocessing (normalise, tokenise, lemmatise)": (
        "cur_ml.text.preprocessor",
        "RussianPreprocessor.stream",
    ),
    "place (district, point, typed address)": ("cur_ml.model.place", "PlaceResolver.resolve"),
    "text features (lemma and character n-grams)": (
        "cur_ml.model.features",
        "AppealFeaturizer.text_blocks",
    ),
    "object crosses and agency tokens": ("cur_ml.model.features", "AppealFeaturizer.with_object"),
    "agency features": ("cur_ml.model.classifier", "AppealClassifier._agency_features"),
    "linear heads (sparse x dense)": ("cur_ml.model.heads", "LinearHead.predict_proba"),
    "answers (top-3, labels, review reasons)": ("cur_ml.model.bundle", "build_predictions"),
    "explanations": ("cur_ml.model.bundle", "explain_batch"),
}


@contextmanager
def _timed(spent: dict[str, float]) -> Iterator[None]:
    import importlib

    patched: list[tuple[Any, str, Any]] = []
    for stage, (module_name, path) in STAGES.items():
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        original = getattr(owner, name)

        def wrapper(*args: Any, __f: Callable = original, __s: str = stage, **kw: Any) -> Any:
            start = time.process_time()
            try:
                return __f(*args, **kw)
            finally:
                spent[__s] = spent.get(__s, 0.0) + time.process_time() - start

        setattr(owner, name, wrapper)
        patched.append((owner, name, original))
    try:
        yield
    finally:
        for owner, name, original in patched:
            setattr(owner, name, original)


def stage_shares(predict: Callable[[Any], object], parts: list[Any]) -> dict[str, float]:
    """CPU seconds per stage over `parts` (after one warm-up part), with "total" and
    "other" (what no stage covers: input columns, scoring glue, the urgency decision)."""
    predict(parts[0])
    spent: dict[str, float] = {}
    with _timed(spent):
        start = time.process_time()
        for part in parts:
            predict(part)
        total = time.process_time() - start
    spent["other"] = total - sum(spent.values())
    spent["total"] = total
    return spent
