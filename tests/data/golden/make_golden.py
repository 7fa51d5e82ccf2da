"""Write the golden predictions: a demo model and what it answers to a fixed set of appeals.

Run once with the code whose behaviour is the reference (here: the commit before the
serving-path speed work); `tests/model/test_golden.py` checks that today's code gives
the same labels and confidences (to 1e-6) with the same model file.

    .venv/bin/python tests/data/golden/make_golden.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cur_ml.data import load_appeals
from cur_ml.model.bundle import load_model
from cur_ml.model.training import train_model
from cur_ml.profiles import apply_profile, profile_names

HERE = Path(__file__).resolve().parent
DEMO = HERE.parents[2] / "datasets" / "demo"
EXTRA = [
    {"id": "empty", "text": ""},
    {"id": "tags", "text": "#спб #двор @adm https://vk.com/wall-1_2"},
    {"id": "latin", "text": "Hello, the elevator is broken again"},
    {"id": "short", "text": "лифт"},
    {
        "id": "typos",
        "text": "Здравствуйте!!! Нет гоячей воды уже третий день,,, ПОМОГИТЕ пожалуйстааа",
    },
    {"id": "unknown-obj", "text": "Яма на дороге у дома 5", "city_object": "Космодром"},
    {"id": "swapped", "text": "Не горит фонарь во дворе", "lat": 30.31, "lon": 59.94},
    {"id": "bad-district", "text": "Мусор не вывозят", "district": "Несуществующий"},
]


def appeals() -> list[dict]:
    frame = load_appeals([DEMO / "appeals.csv"]).frame
    rows = frame.sample(n=min(60, len(frame)), random_state=7).reset_index(drop=True)
    out = []
    for name in profile_names():
        part = apply_profile(rows.iloc[:15], name)
        part = part.assign(id=[f"{name}-{i}" for i in range(len(part))])
        out += part.drop(
            columns=["category", "reason", "urgency", "agency"], errors="ignore"
        ).to_dict("records")
    return [
        {k: v for k, v in r.items() if not (isinstance(v, float) and pd.isna(v))} for r in out
    ] + EXTRA


def main() -> None:
    model_dir = HERE / "model"
    if not (model_dir / "manifest.json").exists():
        train_model(load_appeals([DEMO / "appeals.csv"]), show_progress=False).save(model_dir)
    model = load_model(model_dir)
    records = appeals()
    (HERE / "appeals.json").write_text(json.dumps(records, ensure_ascii=False, indent=1))
    answers = model.predict(records, explain=True)
    (HERE / "predictions.json").write_text(json.dumps(answers, ensure_ascii=False, indent=1))
    print(f"{len(records)} appeals, model {model.version}")


if __name__ == "__main__":
    main()
