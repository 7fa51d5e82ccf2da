"""`POST /v1/predict` answers in the shape the routing service relies on (CONTRACT section 3)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from cur_ml.api.schemas import PredictResponse

HEADS = ("category", "reason", "urgency", "agency")
CLI_FIELDS = {"id", *HEADS, "confidence", "needs_review", "model_version"}


def test_batch_answers_in_input_order_with_every_field(client, dev_texts):
    appeals = [{"id": i if i % 2 else f"A-{i}", "text": t} for i, t in enumerate(dev_texts[:25])]
    r = client.post("/v1/predict", json={"appeals": appeals})
    assert r.status_code == 200, r.text
    body = r.json()
    PredictResponse.model_validate(body)  # the documented schema holds
    assert body["model_version"] == "test-a"
    preds = body["predictions"]
    assert [p["id"] for p in preds] == [a["id"] for a in appeals]
    for p in preds:
        assert CLI_FIELDS <= p.keys()
        assert p["model_version"] == "test-a"
        assert uuid.UUID(p["prediction_id"]).version == 4
        assert p["urgency"] in ("high", "medium", "low")
        for head in HEADS:
            assert 0.0 <= p["confidence"][head] <= 1.0
            alts = p["alternatives"][head]
            assert 1 <= len(alts) <= 3
            assert [a["confidence"] for a in alts] == sorted(
                (a["confidence"] for a in alts), reverse=True
            )
        assert isinstance(p["deadline_days"], int) and p["deadline_days"] > 0
        assert isinstance(p["needs_review"], bool)
        assert isinstance(p["review_reasons"], list)
        assert p["needs_review"] == bool(p["review_reasons"])
    assert len({p["prediction_id"] for p in preds}) == len(preds)


def test_single_appeal_with_every_input_field_and_unknown_ones(client):
    appeal = {
        "id": 42,
        "text": "Во дворе дома 15 по улице Дыбенко неделю не вывозят мусор, баки переполнены.",
        "created_at": "2024-05-14T09:30:00+03:00",
        "source": "portal",
        "district": "Невский",
        "municipality": "муниципальный округ Правобережный",
        "address": "г.Санкт-Петербург, улица Дыбенко, дом 15",
        "lat": 59.9071,
        "lon": 30.4833,
        "city_object": "Двор",
        "category": "ignored: labels are never inputs",
        "photo_urls": ["https://example.org/1.jpg"],
        "nested": {"anything": [1, 2, {"x": None}]},
    }
    r = client.post("/v1/predict", json={"appeals": [appeal]})
    assert r.status_code == 200, r.text
    (p,) = r.json()["predictions"]
    assert p["id"] == 42
    assert p["category"] != "ignored: labels are never inputs"
    start = datetime.fromisoformat("2024-05-14T09:30:00+03:00")
    assert datetime.fromisoformat(p["due_at"]) == start + timedelta(days=p["deadline_days"])


def test_due_at_counts_from_now_without_created_at(client):
    before = datetime.now().astimezone()
    r = client.post("/v1/predict", json={"appeals": [{"text": "Не горит фонарь у парадной"}]})
    (p,) = r.json()["predictions"]
    due = datetime.fromisoformat(p["due_at"])
    expected = before + timedelta(days=p["deadline_days"])
    assert abs((due - expected).total_seconds()) < 60
    assert p["id"] is None


def test_nulls_in_every_optional_field_are_fine(client):
    appeal = {"text": "Яма на дороге", "id": None, "created_at": None, "source": None}
    appeal |= {"district": None, "municipality": None, "address": None, "lat": None}
    appeal |= {"lon": None, "city_object": None}
    r = client.post("/v1/predict", json={"appeals": [appeal]})
    assert r.status_code == 200, r.text


def test_empty_and_odd_texts_are_answered_and_flagged(client):
    # (A NUL is refused with a 422 naming the field: tests/api/test_failures_mapped.py.)
    texts = ["", "   ", "!!!", "12345", "Hello, the lamp is broken", "🙏🙏🙏", "\x01\x7f"]
    r = client.post("/v1/predict", json={"appeals": [{"text": t} for t in texts]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == len(texts)
    assert all(p["needs_review"] for p in preds)


_WORD = re.compile(r"\w")


def test_explanation_offsets_point_at_words_of_the_text(client, dev_texts):
    texts = dev_texts[:60]
    r = client.post("/v1/predict", json={"appeals": [{"text": t} for t in texts]})
    spans_seen = 0
    for text, p in zip(texts, r.json()["predictions"], strict=True):
        assert set(p["explanation"]) == set(HEADS)
        for head in HEADS:
            for span in p["explanation"][head]:
                s, e = span["start"], span["end"]
                assert 0 <= s < e <= len(text)
                assert text[s:e] == span["text"]
                assert span["text"].strip() == span["text"] and _WORD.search(span["text"])
                # a whole word: no letter glued on either side
                assert s == 0 or not text[s - 1].isalnum()
                assert e == len(text) or not text[e].isalnum()
                assert span["weight"] >= 0  # rounded to 4 places
                spans_seen += 1
    assert spans_seen > 50


def test_explain_false_leaves_explanations_out(client, dev_texts):
    r = client.post("/v1/predict?explain=false", json={"appeals": [{"text": dev_texts[0]}]})
    assert r.status_code == 200
    (p,) = r.json()["predictions"]
    assert p.get("explanation") is None


def test_same_text_same_labels_as_the_model_in_process(client, model_a_dir, dev_texts):
    from cur_ml.model import load_model

    model = load_model(model_a_dir)
    texts = dev_texts[:20]
    direct = model.predict([{"text": t} for t in texts])
    served = client.post("/v1/predict", json={"appeals": [{"text": t} for t in texts]}).json()
    for d, s in zip(direct, served["predictions"], strict=True):
        assert {h: d[h] for h in HEADS} == {h: s[h] for h in HEADS}
        assert d["confidence"] == s["confidence"]


def test_model_info(client):
    r = client.get("/v1/model")
    assert r.status_code == 200
    info = r.json()
    assert info["model_version"] == "test-a"
    assert len(info["training_data"]["sha256"]) == 64
    assert info["training_data"]["rows"] > 0
    assert set(info["labels"]) == set(HEADS)
    assert info["labels"]["urgency"] == ["high", "medium", "low"]
    assert isinstance(info["metrics"], dict)


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["model_version"] == "test-a"


def test_openapi_documents_predict_with_russian_examples(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/predict"]["post"]
    # This app has no predict token: predict is documented as open (tests/api/test_openapi.py).
    assert {"200", "400", "413", "422", "503"} <= set(op["responses"])
    dumped = str(spec)
    assert "Дыбенко" in dumped and "Благоустройство" in dumped
    assert client.get("/docs").status_code == 200


def test_place_is_answered_and_documented(client):
    appeals = [
        {"id": "portal", "text": "Не работает лифт", "district": "Невский", "city_object": "Дом"},
        {"id": "post", "text": "Во дворе не вывозят мусор", "source": "vk"},
    ]
    r = client.post("/v1/predict", json={"appeals": appeals})
    assert r.status_code == 200, r.text
    portal, post = r.json()["predictions"]
    assert portal["place"]["method"] == "given" and portal["place"]["district"] == "Невский"
    assert post["place"]["method"] == "none" and "place_unknown" in post["review_reasons"]
    spec = client.get("/openapi.json").json()
    place = spec["components"]["schemas"]["Place"]
    assert place["properties"]["method"]["enum"] == ["given", "point", "address_in_text", "none"]
    assert "place" in spec["components"]["schemas"]["Prediction"]["properties"]
    # The input schema is the CONTRACT's, unchanged: no new required field.
    assert spec["components"]["schemas"]["Appeal"]["required"] == ["text"]
