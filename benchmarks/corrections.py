"""Does the corrections loop make the model better? Two experiments on the real portal data.

(a) Label noise: train on the portal's first labels (`reason_initial`, `agency_initial`) of
    `train`, then import the real operator corrections (`corrections.csv.gz`) and retrain;
    both models are scored on `dev` with the final labels.
(b) Drift: train on October–February; operators correct the model's wrong predictions on
    the first half of March (simulated from the true labels); retrain with those corrections;
    both models are scored on the second half of March.

Both retrains go through the product's own path (`cur_ml.retrain.loop.retrain`: corrected
labels replace the originals, corrected appeals weigh more, challenger vs champion).

    .venv/bin/python benchmarks/corrections.py [--data PATH] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd
from _common import HEADS, machine, resolve_data, table

from cur_ml.data import Dataset, load_appeals
from cur_ml.model import load_model
from cur_ml.model.taxonomy import Taxonomy
from cur_ml.retrain.loop import retrain
from cur_ml.settings import Settings


def _settings(work: Path) -> Settings:
    return Settings(model_dir=work / "models" / "default", mlflow_enabled=False)


def _figures(metrics: dict) -> dict[str, float]:
    out = {h: metrics[h]["accuracy"] for h in HEADS}
    out["recall_high"] = metrics["urgency"]["recall_high"]
    return out


def label_noise(data: Path, corrections: Path, work: Path) -> dict:
    everything = load_appeals([data])
    taxonomy = Taxonomy.from_labels(everything.frame)
    train = everything.frame[everything.frame["split"] == "train"].reset_index(drop=True)
    dev = everything.frame[everything.frame["split"] == "dev"].reset_index(drop=True)
    # The portal's first labels: the citizen's menu choice and the first routing.
    initial = train.assign(reason=train["reason_initial"], agency=train["agency_initial"])
    known = initial["reason"].isin(taxonomy.category_of)
    initial.loc[known, "category"] = initial.loc[known, "reason"].map(taxonomy.category_of)
    initial.loc[known, "urgency"] = initial.loc[known, "reason"].map(taxonomy.urgency_of)
    events = pd.read_csv(corrections, dtype=str)
    events = events[events["appeal_id"].isin(set(train["id"]))]
    settings = _settings(work / "noise")
    before = retrain(settings, base=Dataset(initial, [data]), held_out=dev, show_progress=False)
    after = retrain(
        settings,
        base=Dataset(initial, [data]),
        held_out=dev,
        base_corrections=events,
        show_progress=False,
    )
    return {
        "before": _figures(before.metrics["challenger"]),
        "after": _figures(after.metrics["challenger"]),
        "corrections": len(events),
        "appeals_corrected": after.corrections_applied,
        "promoted": after.promoted,
    }


def drift(data: Path, work: Path) -> dict:
    everything = load_appeals([data])
    frame = everything.frame
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    march = frame[frame["split"] == "dev"].reset_index(drop=True)
    first = march[march["created_at"] < "2021-03-16"].reset_index(drop=True)
    second = march[march["created_at"] >= "2021-03-16"].reset_index(drop=True)
    settings = _settings(work / "drift")
    champion = retrain(settings, base=Dataset(train, [data]), held_out=second, show_progress=False)

    model = load_model(settings.model_dir)
    predicted = model.predict(first)
    # Operators correct what the model got wrong; what it got right they accept as is.
    rows, n_corrections = [], 0
    for truth, pred in zip(first.to_dict("records"), predicted, strict=True):
        row = {**truth, **{h: pred[h] for h in HEADS}}
        for field in ("reason", "agency"):
            if pred[field] != truth[field]:
                row[field] = truth[field]
                n_corrections += 1
        row["category"], row["urgency"] = truth["category"], truth["urgency"]
        rows.append(row)
    challenger = retrain(
        settings,
        base=Dataset(train, [data]),
        held_out=second,
        operator_rows=pd.DataFrame(rows),
        show_progress=False,
    )
    return {
        "before": _figures(champion.metrics["challenger"]),
        "after": _figures(challenger.metrics["challenger"]),
        "corrections": n_corrections,
        "appeals_reviewed": len(first),
        "evaluated_on": len(second),
        "promoted": challenger.promoted,
        "decision": challenger.reasons,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--corrections", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    data = resolve_data(args.data)
    corrections = args.corrections or data.parent / "corrections.csv.gz"
    print(machine())
    with tempfile.TemporaryDirectory(prefix="cur-ml-bench-corr-") as tmp:
        results = {
            "label_noise": label_noise(data, corrections, Path(tmp)),
            "drift": drift(data, Path(tmp)),
        }
    cols = [*HEADS, "recall_high"]
    for name, title in (
        ("label_noise", "(a) label noise: trained on the portal's first labels, scored on dev"),
        ("drift", "(b) drift: trained on Oct-Feb, scored on 16-31 March"),
    ):
        r = results[name]
        rows = [
            ["before corrections", *(r["before"][c] for c in cols)],
            ["after corrections", *(r["after"][c] for c in cols)],
            ["change", *(round(r["after"][c] - r["before"][c], 4) for c in cols)],
        ]
        print(table(["model", *cols], rows, title=title))
        extra = {k: v for k, v in r.items() if k not in ("before", "after")}
        print("  " + json.dumps(extra, ensure_ascii=False) + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
