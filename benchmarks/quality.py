"""Quality on `dev`, per input profile: our model vs fastText vs TF-IDF + LinearSVC.

Everything is trained on split `train` in this run and scored on split `dev`
(March 2021), once per input profile (`cur_ml.profiles`):

* ``portal``: every input field (text, time, object type, district, municipality,
  address, point);
* ``geo``: text, time and the point;
* ``text``: text and time;
* ``social``: text and time, the text restyled as a social-network post
  (greetings, hashtags, @mentions, emoji, links, lost capitals and punctuation,
  stretched and run-together words, typos in 3 % of words; deterministic).

Our model is one model, trained once, scored on every profile. Each profile sits
next to baselines trained on the *same inputs*: text-only fastText and TF-IDF +
LinearSVC for ``geo``, ``text`` and ``social``; the same with the form's fields
(object type, district, municipality) for ``portal``.

    .venv/bin/python benchmarks/quality.py [--data PATH] [--json PATH] [--limit N]

Prints per profile: accuracy and macro-F1 of every head; for urgency the accuracy
of the likeliest label, and recall / precision of `high` at our operating point;
the issue's targets with met / not met; clean vs social-style text; and the
coverage / accuracy curve behind `needs_review`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    FASTTEXT_PARAMS,
    HEADS,
    ft_predict,
    ft_text,
    machine,
    resolve_data,
    train_fasttext,
)
from _quality_report import curve_tables, delta_table, profile_table, target_table

PROFILES = ("portal", "geo", "text", "social")
#: The form's fields a "with fields" baseline reads (one-hot for TF-IDF, tokens for fastText).
FORM_FIELDS = ("city_object", "district", "municipality")
OURS, FASTTEXT, TFIDF = "ours (cur_ml)", "fastText", "TF-IDF+LinearSVC"


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def scores(y: np.ndarray, p: np.ndarray, head: str) -> dict[str, float]:
    """Accuracy and macro-F1; for urgency also recall / precision of `high` (as ours)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    out = {
        "accuracy": round(float(accuracy_score(y, p)), 4),
        "macro_f1": round(float(f1_score(y, p, average="macro", zero_division=0)), 4),
    }
    if head == "urgency":
        kw = {"labels": ["high"], "average": "macro", "zero_division": 0}
        out["accuracy_likeliest"] = out["accuracy"]
        out["recall_high"] = round(float(recall_score(y, p, **kw)), 4)
        out["precision_high"] = round(float(precision_score(y, p, **kw)), 4)
    return out


# ------------------------------------------------------------------ contenders
def run_ours(train, views: dict[str, pd.DataFrame]) -> dict[str, Any]:
    from cur_ml.model.training import evaluate_model, train_model
    from cur_ml.settings import Settings

    log(f"training our model on {len(train.frame):,} appeals")
    start = time.perf_counter()
    model = train_model(train, params=Settings().training_params(), show_progress=False)
    seconds = time.perf_counter() - start
    log(f"  trained in {seconds:.1f} s")
    out: dict[str, Any] = {"train_seconds": round(seconds, 2), "profiles": {}, "curves": {}}
    out["operating_point"] = model.manifest["operating_point"]
    for name, frame in views.items():
        log(f"  evaluating ours · {name}")
        predictions = model.predict(frame)
        out["profiles"][name] = evaluate_model(model, frame, predictions=predictions)
        out["curves"][name] = review_curve(predictions, frame)
    return out


def review_curve(predictions: list[dict], frame: pd.DataFrame) -> dict[str, Any]:
    """Coverage / accuracy of the reason head over confidence thresholds (the review curve)."""
    from cur_ml.model.operating import coverage_curve

    conf = np.array([p["confidence"]["reason"] for p in predictions])
    correct = np.array([p["reason"] for p in predictions]) == frame["reason"].to_numpy()
    routed = ~np.array([p["needs_review"] for p in predictions])
    return {
        "points": coverage_curve(conf, correct, np.round(np.arange(0.0, 1.0, 0.1), 2)),
        "needs_review_rate": round(float(1 - routed.mean()), 4),
        "routed_reason_accuracy": round(float(correct[routed].mean()), 4) if routed.any() else None,
    }


def field_tokens(frame: pd.DataFrame) -> list[str]:
    """The form's fields as words a text model can read ('__obj_Дом __dist_Невский ...')."""
    return [
        " ".join(
            f"__{c}_{'_'.join(str(v).split())}" for c, v in zip(FORM_FIELDS, row, strict=True) if v
        )
        for row in frame[list(FORM_FIELDS)].itertuples(index=False)
    ]


def run_fasttext(train: pd.DataFrame, views: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Two fastText sets of four heads: text only, and text + the form's fields as tokens."""
    out: dict[str, Any] = {"profiles": {n: {} for n in views}, "train_seconds": 0.0}
    inputs = {
        "text": lambda f: [ft_text(t) for t in f["text"]],
        "fields": lambda f: [
            f"{tok} {ft_text(t)}" for tok, t in zip(field_tokens(f), f["text"], strict=True)
        ],
    }
    with tempfile.TemporaryDirectory(prefix="cur-ml-bench-ft-") as tmp:
        for kind, make in inputs.items():
            texts = make(train)
            for head in HEADS:
                log(f"training fastText ({kind}) · {head}")
                start = time.perf_counter()
                model, back = train_fasttext(texts, train[head].tolist(), Path(tmp) / head)
                out["train_seconds"] += time.perf_counter() - start
                for name, frame in views.items():
                    if (name == "portal") == (kind == "fields"):
                        pred = np.array([back.get(t, "") for t in ft_predict(model, make(frame))])
                        out["profiles"][name][head] = scores(frame[head].to_numpy(), pred, head)
                del model
    out["train_seconds"] = round(out["train_seconds"], 2)
    return out


def run_tfidf(train: pd.DataFrame, views: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """TF-IDF (our lemmas, uni+bigrams) + LinearSVC per head: text only, and with fields."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.svm import LinearSVC

    from cur_ml.text import RussianPreprocessor

    log("lemmatising for TF-IDF")
    start = time.perf_counter()
    prep = RussianPreprocessor().fit([])
    vec = TfidfVectorizer(
        token_pattern=r"\S+",
        lowercase=False,
        ngram_range=(1, 2),
        min_df=2,
        sublinear_tf=True,
        dtype=np.float32,
    )
    X_train = vec.fit_transform(prep.transform(train["text"]))
    X_views = {n: vec.transform(prep.transform(f["text"])) for n, f in views.items()}
    enc = OneHotEncoder(handle_unknown="ignore", dtype=np.float32).fit(train[list(FORM_FIELDS)])
    with_fields = sp.hstack([X_train, enc.transform(train[list(FORM_FIELDS)])], "csr")
    portal = views["portal"]
    portal_fields = sp.hstack([X_views["portal"], enc.transform(portal[list(FORM_FIELDS)])], "csr")
    out: dict[str, Any] = {"profiles": {n: {} for n in views}}
    for head in HEADS:
        y = train[head].to_numpy()
        log(f"training TF-IDF+LinearSVC (text) · {head}")
        clf = LinearSVC(C=0.5).fit(X_train, y)
        for name, frame in views.items():
            if name != "portal":
                pred = clf.predict(X_views[name])
                out["profiles"][name][head] = scores(frame[head].to_numpy(), pred, head)
        log(f"training TF-IDF+LinearSVC (fields) · {head}")
        clf = LinearSVC(C=0.5).fit(with_fields, y)
        pred = clf.predict(portal_fields)
        out["profiles"]["portal"][head] = scores(portal[head].to_numpy(), pred, head)
    out["train_seconds"] = round(time.perf_counter() - start, 2)
    return out


def _slice(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The newest `limit` appeals (a quick check, not a figure to report)."""
    return frame.sort_values("created_at", kind="stable").tail(limit).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="appeals CSV (default: shared)")
    parser.add_argument("--json", type=Path, default=None, help="also save the figures here")
    parser.add_argument("--limit", type=int, default=None, help="train on the newest N appeals")
    parser.add_argument(
        "--no-baselines", action="store_true", help="ours only (a quick look at the profiles)"
    )
    args = parser.parse_args(argv)
    data = resolve_data(args.data)

    from cur_ml.data import Dataset, load_appeals
    from cur_ml.profiles import apply_profile

    log(f"loading {data}")
    train = load_appeals([data], split="train")
    dev = load_appeals([data], split="dev").frame
    if args.limit:
        if args.limit < 300:
            sys.exit("--limit must be at least 300 appeals")
        train = Dataset(_slice(train.frame, args.limit), train.paths, train.skipped)
    views = {name: apply_profile(dev, name) for name in PROFILES}

    results: dict[str, Any] = {OURS: run_ours(train, views)}
    if not args.no_baselines:
        results[TFIDF] = run_tfidf(train.frame, views)
        results[FASTTEXT] = run_fasttext(train.frame, views)

    print(f"quality on dev · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine()}")
    print(f"data: {data} · train {len(train.frame):,} appeals, dev {len(dev):,}")
    print(f"fastText: {FASTTEXT_PARAMS}")
    seconds = {name: res["train_seconds"] for name, res in results.items()}
    print("training, s (this run, shared machine): " + json.dumps(seconds))
    ours = results[OURS]
    print(f"our operating point: {json.dumps(ours['operating_point'], ensure_ascii=False)}")
    for name in PROFILES:
        print()
        print(profile_table(name, {k: v["profiles"][name] for k, v in results.items()}, len(dev)))
    targets, verdict = target_table(ours["profiles"], results)
    print()
    print(targets)
    print()
    print(delta_table(ours["profiles"]))
    print()
    print(curve_tables(ours["curves"]))

    if args.json:
        payload = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "data": str(data),
            "train_rows": len(train.frame),
            "dev_rows": len(dev),
            "fasttext_params": FASTTEXT_PARAMS,
            "results": results,
            "targets": verdict,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n", "utf-8"
        )
        log(f"figures saved to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
