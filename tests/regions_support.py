"""Helpers of the region tests (importable: tests/ is on sys.path): the two demo regions'
models and appeals of each."""

from __future__ import annotations

from pathlib import Path

from cur_ml.data import load_appeals
from cur_ml.model.training import train_model

REPO = Path(__file__).resolve().parent.parent
DEMO = {
    "spb": REPO / "datasets" / "demo" / "appeals.csv",
    "krd": REPO / "datasets" / "demo_krd" / "appeals.csv",
}
#: Appeals of the default region (spb; no `region`, as today's callers send them).
SPB_APPEALS = [
    {"id": "s1", "text": "Яма во дворе", "district": "Невский", "source": "portal"},
    {"id": "s2", "text": "Не вывозят мусор, баки переполнены", "district": "Пушкинский"},
    {"id": "s3", "text": "течёт крыша", "district": "Невский", "source": "vk"},
]
#: Appeals of the Krasnodar-like demo region.
KRD_APPEALS = [
    {"id": "k1", "text": "камыш у реки тлеет второй день, дым заходит в дома", "region": "krd"},
    {
        "id": "k2",
        "text": "После урагана опора ЛЭП наклонилась, провода висят над дорогой",
        "region": "krd",
    },
    {
        "id": "k3",
        "text": "В частном секторе по ул Горная мусоровоз не приезжает по графику две недели",
        "region": "krd",
    },
]


def regional_models(root: Path) -> Path:
    """root/spb and root/krd: each demo region's model, trained on its train split, sending
    nearly every appeal to review (review thresholds read off the curve for 99.9 %)."""
    for region, data in DEMO.items():
        model = train_model(
            load_appeals([data], split="train"),
            params={"review_accuracy": 0.999},
            show_progress=False,
        )
        model.save(root / region)
    return root


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
