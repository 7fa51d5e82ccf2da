"""`POST /v1/corrections` with `base_version` (SQLite and PostgreSQL): a correction based on an
older version of an appeal's labels is a 409 naming what changed, and nothing of its request
is stored; without `base_version` nothing changes for existing clients."""

from __future__ import annotations

from corrections_support import OP, predict

from cur_ml.api.schemas import PredictionDetail, StaleVersionBody


def _detail(client, pid: str) -> dict:
    r = client.get(f"/v1/predictions/{pid}", headers=OP)
    assert r.status_code == 200, r.text
    PredictionDetail.model_validate(r.json())
    return r.json()


def test_a_correction_over_a_newer_version_is_a_409_with_what_changed(app_on, store_url):
    with app_on(database_url=store_url) as client:
        [pred] = predict(client, [{"text": "Во дворе не вывозят мусор", "district": "Невский"}])
        pid = pred["prediction_id"]
        labels = client.get("/v1/model").json()["labels"]
        agency = next(a for a in labels["agency"] if a != pred["agency"])
        first = _detail(client, pid)
        assert first["version"] == 0

        fix = {"prediction_id": pid, "field": "agency", "value": agency, "base_version": 0}
        r = client.post(
            "/v1/corrections", json={"corrections": [{**fix, "operator": "Петрова"}]}, headers=OP
        )
        assert r.status_code == 201, r.text
        version = _detail(client, pid)["version"]
        assert version == r.json()["corrections"][0]["id"]

        # Another operator still looking at version 0 corrects the urgency and the reason.
        stale = [
            {"prediction_id": pid, "field": "urgency", "value": "high", "base_version": 0},
            {"prediction_id": pid, "field": "reason", "value": labels["reason"][0]},
        ]
        r = client.post("/v1/corrections", json={"corrections": stale}, headers=OP)
        assert r.status_code == 409, r.text
        body = r.json()
        StaleVersionBody.model_validate(body)
        assert body["error"] == "stale_version"
        assert [d["field"] for d in body["detail"]] == ["corrections[0].base_version"]
        [change] = body["changes"]
        assert (change["field"], change["old_value"], change["value"], change["operator"]) == (
            "agency",
            pred["agency"],
            agency,
            "Петрова",
        )
        assert change["at"]
        after = _detail(client, pid)
        assert after["version"] == version and len(after["corrections"]) == 1  # nothing stored

        # Based on the version now it is stored; without base_version, as before.
        stale[0]["base_version"] = version
        assert (
            client.post("/v1/corrections", json={"corrections": stale}, headers=OP).status_code
            == 201
        )
        plain = {"prediction_id": pid, "field": "urgency", "value": "low"}
        assert (
            client.post("/v1/corrections", json={"corrections": [plain]}, headers=OP).status_code
            == 201
        )


def test_the_prediction_says_which_fields_wait_for_review(app_on, store_url):
    with app_on(database_url=store_url) as client:
        preds = predict(client, [{"id": "short", "text": "ну"}])  # too short: every field
        pid = preds[0]["prediction_id"]
        review = _detail(client, pid)["review"]
        assert review == {
            "needed": ["category", "reason", "urgency", "agency"],
            "open": ["category", "reason", "urgency", "agency"],
            "done": False,
        }
        accept = [
            {"prediction_id": pid, "field": f, "value": preds[0][f]} for f in ("reason", "agency")
        ]
        assert (
            client.post("/v1/corrections", json={"corrections": accept}, headers=OP).status_code
            == 201
        )
        # The reason settles the category and urgency its taxonomy ties to it.
        assert _detail(client, pid)["review"] == {
            "needed": ["category", "reason", "urgency", "agency"],
            "open": [],
            "done": True,
        }
        queue = client.get("/v1/review-queue", headers=OP).json()
        assert pid not in [i["prediction_id"] for i in queue["items"]]
