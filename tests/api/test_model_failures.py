"""A model failure caused by particular appeals answers 422 naming them; a broken model, 500."""

from __future__ import annotations

import pytest


class Flaky:
    """Wraps a model; fails on appeals containing `poison` (or on everything)."""

    def __init__(self, model, poison: str | None) -> None:
        self.model, self.poison = model, poison
        self.version, self.manifest = model.version, model.manifest

    def predict(self, records, explain=False):
        if self.poison is None or any(self.poison in r["text"] for r in records):
            raise ValueError("the model broke")
        return self.model.predict(records, explain=explain)


@pytest.mark.parametrize("coalesce", [True, False])
def test_appeals_the_model_fails_on_are_named(app_factory, model_a_dir, coalesce):
    with app_factory(model_a_dir, coalesce_predictions=coalesce) as client:
        slot = client.app.state.slot
        slot.model = Flaky(slot.model, poison="☠")
        texts = ["Яма на дороге", "☠ яд", "Не горит фонарь", "ещё ☠", "Мусор во дворе"]
        r = client.post("/v1/predict", json={"appeals": [{"text": t} for t in texts]})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["error"] == "unprocessable_appeal"
        assert [d["field"] for d in body["detail"]] == ["appeals[1].text", "appeals[3].text"]
        ok = client.post("/v1/predict", json={"appeals": [{"text": texts[0]}]})
        assert ok.status_code == 200


def test_a_broken_model_is_a_500_with_a_request_id(app_factory, model_a_dir):
    with app_factory(model_a_dir) as client:
        slot = client.app.state.slot
        slot.model = Flaky(slot.model, poison=None)
        r = client.post(
            "/v1/predict", json={"appeals": [{"text": "Яма"}]}, headers={"X-Request-ID": "q-1"}
        )
        assert r.status_code == 500
        assert r.json() == {
            "error": "internal_error",
            "message": "internal error; quote the request id",
            "detail": [],
            "request_id": "q-1",
        }
        assert r.headers["x-request-id"] == "q-1"


def test_texts_outside_the_basic_plane_are_answered(client):
    texts = ["A\U00017000", "\U0001f600 яма", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\u200b\u200d", "Ё" * 50]
    r = client.post("/v1/predict", json={"appeals": [{"text": t} for t in texts]})
    # 200 once the text layer copes with every character; 422 naming the appeal meanwhile
    assert r.status_code in (200, 422), r.text
