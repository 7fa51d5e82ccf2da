"""`GET /v1/review-queue`: most urgent and least confident first, without reviewed ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from corrections_support import OP, predict

from cur_ml.api.schemas import ReviewItem
from cur_ml.store import prediction_row

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)

#: (key, urgency, lowest confidence, needs_review, district, source, minutes after T0)
ROWS = [
    ("low-unsure", "low", 0.10, True, "Невский", "portal", 0),
    ("high-sure", "high", 0.60, True, "Невский", "vk", 1),
    ("medium", "medium", 0.30, True, "Кировский", "portal", 2),
    ("high-unsure", "high", 0.20, True, "Кировский", "vk", 3),
    ("high-unsure-later", "high", 0.20, True, None, None, 4),
    ("fine", "high", 0.05, False, "Невский", "portal", 5),  # no review needed
    ("low-sure", "low", 0.90, True, "Невский", "telegram", 6),
]
ORDER = ["high-unsure", "high-unsure-later", "high-sure", "medium", "low-unsure", "low-sure"]


def _pid(key: str) -> str:
    return f"00000000-0000-4000-8000-{ROWS.index(next(r for r in ROWS if r[0] == key)):012d}"


def _put(client) -> None:
    rows = []
    for i, (key, urgency, low, review, district, source, minutes) in enumerate(ROWS):
        pred = {
            "prediction_id": f"00000000-0000-4000-8000-{i:012d}",
            "id": key,
            "model_version": "test-a",
            "category": "Благоустройство" if i % 2 else "ЖКХ",
            "reason": f"Причина {i}",
            "urgency": urgency,
            "agency": "ЖА" if i % 3 else "ГКУ",
            "confidence": {"category": 0.95, "reason": low, "urgency": 0.97, "agency": 0.99},
            "alternatives": {
                h: [{"label": "x", "confidence": 0.5}]
                for h in ("category", "reason", "urgency", "agency")
            },
            "needs_review": review,
            "review_reasons": ["low_confidence:reason"] if review else [],
            "deadline_days": 5,
            "due_at": "2024-05-19T09:00:00+00:00",
        }
        appeal = {"id": key, "text": f"Обращение {key}"}
        if district:
            appeal["district"] = district
        if source:
            appeal["source"] = source
        rows.append(prediction_row(appeal, pred, at=T0 + timedelta(minutes=minutes)))
    client.app.state.predictions.add_many(rows)


@pytest.fixture
def queue(app_on, store_url):
    with app_on(database_url=store_url) as client:
        _put(client)
        yield client


def _keys(client, **params) -> list[str]:
    r = client.get("/v1/review-queue", params=params, headers=OP)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


def test_most_urgent_and_least_confident_first(queue):
    r = queue.get("/v1/review-queue", headers=OP)
    body = r.json()
    assert [i["id"] for i in body["items"]] == ORDER
    assert body["counts"] == {"pending": 6, "reviewed": 0}
    assert (body["offset"], body["limit"]) == (0, 50)
    first = body["items"][0]
    ReviewItem.model_validate(first)
    assert first["prediction_id"] == _pid("high-unsure")
    assert (first["text"], first["district"], first["source"]) == (
        "Обращение high-unsure",
        "Кировский",
        "vk",
    )
    assert first["min_confidence"] == 0.2 and first["confidence"]["reason"] == 0.2
    assert first["review_reasons"] == ["low_confidence:reason"]
    assert first["model_version"] == "test-a"
    assert datetime.fromisoformat(first["created_at"]) == T0 + timedelta(minutes=3)


def test_an_appeal_leaves_the_queue_once_its_flagged_fields_are_settled(queue):
    # Every row was flagged for its reason alone: the reason decides, other fields do not.
    reason = queue.get("/v1/model").json()["labels"]["reason"][0]
    high = queue.get(f"/v1/predictions/{_pid('high-unsure')}", headers=OP).json()
    accept = {
        "prediction_id": _pid("high-unsure"),
        "field": "category",
        "value": high["prediction"]["category"],  # the predicted value: an acceptance
    }
    fix = {"prediction_id": _pid("medium"), "field": "urgency", "value": "high"}
    assert (
        queue.post("/v1/corrections", json={"corrections": [accept, fix]}, headers=OP).status_code
        == 201
    )
    assert _keys(queue) == ORDER  # the reasons were not looked at
    reasons = [{"prediction_id": _pid(k), "field": "reason", "value": reason} for k in ORDER[::3]]
    r = queue.post("/v1/corrections", json={"corrections": reasons}, headers=OP)
    assert r.status_code == 201, r.text
    assert _keys(queue) == [k for k in ORDER if k not in ORDER[::3]]
    body = queue.get("/v1/review-queue", headers=OP).json()
    assert body["counts"] == {"pending": 4, "reviewed": 2}
    kirovsky = queue.get("/v1/review-queue", params={"district": "Кировский"}, headers=OP)
    assert kirovsky.json()["counts"] == {"pending": 0, "reviewed": 2}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"district": "Невский"}, ["high-sure", "low-unsure", "low-sure"]),
        ({"source": "vk"}, ["high-unsure", "high-sure"]),
        ({"source": "portal", "district": "Кировский"}, ["medium"]),
        ({"category": "ЖКХ"}, ["high-unsure-later", "medium", "low-unsure", "low-sure"]),
        ({"agency": "ГКУ"}, ["high-unsure", "low-unsure", "low-sure"]),
        ({"since": (T0 + timedelta(minutes=3)).isoformat()}, [*ORDER[:2], "low-sure"]),
        ({"until": "2024-05-14T12:02:00+03:00"}, ["high-sure", "low-unsure"]),  # 09:02 UTC
        ({"district": "Нигде"}, []),
    ],
)
def test_filters(queue, params, expected):
    assert _keys(queue, **params) == expected


def test_pages_are_consecutive(queue):
    pages = [_keys(queue, offset=o, limit=4) for o in (0, 4, 8)]
    assert pages == [ORDER[:4], ORDER[4:], []]
    r = queue.get("/v1/review-queue", params={"offset": 4, "limit": 4}, headers=OP).json()
    assert (r["offset"], r["limit"], r["counts"]["pending"]) == (4, 4, 6)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"since": "x"}])
def test_bad_parameters_are_named(queue, params):
    r = queue.get("/v1/review-queue", params=params, headers=OP)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == next(iter(params))


def test_served_predictions_that_need_review_are_queued(app_on, dev_texts):
    with app_on() as client:
        appeals = [
            {"id": i, "text": t, "district": "Невский"} for i, t in enumerate(dev_texts[:60])
        ]
        appeals += [{"id": "short", "text": "ну"}]
        preds = predict(client, appeals)
        flagged = [p for p in preds if p["needs_review"]]
        assert flagged, "the demo model flags some appeals for review"
        body = client.get("/v1/review-queue", params={"limit": 500}, headers=OP).json()
        assert {i["prediction_id"] for i in body["items"]} == {p["prediction_id"] for p in flagged}
        rank = {"high": 0, "medium": 1, "low": 2}
        keys = [(rank[i["urgency"]], i["min_confidence"]) for i in body["items"]]
        assert keys == sorted(keys)
        for item in body["items"]:
            pred = next(p for p in flagged if p["prediction_id"] == item["prediction_id"])
            assert item["min_confidence"] == pytest.approx(min(pred["confidence"].values()))
            assert item["alternatives"] == pred["alternatives"]
            assert item["review_reasons"] == pred["review_reasons"]
