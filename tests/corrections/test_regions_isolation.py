"""Operators and admins belong to regions: a personal account sees and corrects only its
regions' appeals, and retrains only its regions' models; another region's prediction is
answered exactly as one that does not exist. The environment tokens act for every region."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from corrections_support import ADM, OP, predict, running, settings_for
from fastapi.testclient import TestClient
from regions_support import KRD_APPEALS, SPB_APPEALS, bearer, regional_models

from cur_ml.store.users import UserRepository

UNKNOWN = "ffffffff-ffff-4fff-8fff-ffffffffffff"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return regional_models(tmp_path_factory.mktemp("regions"))


@dataclass
class Deployment:
    client: TestClient
    spb: list[str]  # prediction ids of each region
    krd: list[str]
    tokens: dict[str, str]  # account name → its token

    def as_(self, name: str) -> dict[str, str]:
        return bearer(self.tokens[name])

    def labels(self, region: str, head: str) -> set[str]:
        model = self.client.get("/v1/model", params={"region": region}).json()
        return set(model["labels"][head])


@pytest.fixture
def deployment(tmp_path, models) -> Iterator[Deployment]:
    """spb (the default region) and krd served from one process; appeals of both predicted;
    operators of each region, an operator of both, an spb admin, and an account made before
    regions (NULL regions: the default region only)."""
    settings = settings_for(tmp_path, models / "{region}", regions=["spb", "krd"])
    with running(settings) as client:
        users = UserRepository(client.app.state.corrections.engine)
        accounts = {
            "Петрова": ("operator", ["spb"]),
            "Кузнецов": ("operator", ["krd"]),
            "Оба": ("operator", ["spb", "krd"]),
            "Админ СПб": ("admin", ["spb"]),
            "Старая": ("operator", None),
        }
        tokens = {
            name: users.add(name, role, regions)[1] for name, (role, regions) in accounts.items()
        }
        spb = [p["prediction_id"] for p in predict(client, SPB_APPEALS)]
        krd = [p["prediction_id"] for p in predict(client, KRD_APPEALS)]
        yield Deployment(client, spb, krd, tokens)


def _queue(d: Deployment, headers: dict[str, str], **params: Any) -> set[str]:
    r = d.client.get("/v1/review-queue", headers=headers, params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return {item["prediction_id"] for item in r.json()["items"]}


def _without_request_id(r) -> dict:
    body = r.json()
    body.pop("request_id", None)
    return body


def test_each_operator_sees_only_the_queue_of_their_regions(deployment):
    d = deployment
    assert _queue(d, d.as_("Петрова")) == set(d.spb)
    assert _queue(d, d.as_("Кузнецов")) == set(d.krd)
    assert _queue(d, d.as_("Старая")) == set(d.spb)  # before regions: the default region
    assert _queue(d, d.as_("Оба")) == set(d.spb) | set(d.krd)
    assert _queue(d, d.as_("Оба"), region="krd") == set(d.krd)
    assert _queue(d, OP) == set(d.spb) | set(d.krd)  # the shared token: every region
    items = d.client.get("/v1/review-queue", headers=d.as_("Кузнецов")).json()["items"]
    assert {i["region"] for i in items} == {"krd"}
    counts = d.client.get("/v1/review-queue", headers=d.as_("Кузнецов")).json()["counts"]
    assert counts["pending"] == len(d.krd)

    # A region filter must be one of the caller's: another served region is 403, an
    # unknown one 422 naming it.
    r = d.client.get("/v1/review-queue", headers=d.as_("Петрова"), params={"region": "krd"})
    assert r.status_code == 403 and "krd" in r.json()["message"]
    r = d.client.get("/v1/review-queue", headers=d.as_("Петрова"), params={"region": "msk"})
    assert r.status_code == 422 and "msk" in r.text and "spb, krd" in r.text

    # One prediction: another region's is a 404 exactly as an unknown id.
    r = d.client.get(f"/v1/predictions/{d.krd[0]}", headers=d.as_("Петрова"))
    unknown = d.client.get(f"/v1/predictions/{UNKNOWN}", headers=d.as_("Петрова"))
    assert r.status_code == unknown.status_code == 404
    assert _without_request_id(r) == {
        **_without_request_id(unknown),
        "message": _without_request_id(unknown)["message"].replace(UNKNOWN, d.krd[0]),
    }
    mine = d.client.get(f"/v1/predictions/{d.krd[0]}", headers=d.as_("Кузнецов"))
    assert mine.status_code == 200 and mine.json()["region"] == "krd"


def test_another_regions_prediction_is_corrected_as_an_unknown_one(deployment):
    d = deployment
    krd_agency = sorted(d.labels("krd", "agency") - d.labels("spb", "agency"))[0]

    def correct(headers: dict[str, str], pid: str, value: str, key: str):
        item = {"prediction_id": pid, "field": "agency", "value": value, "idempotency_key": key}
        return d.client.post("/v1/corrections", headers=headers, json={"corrections": [item]})

    spb_agency = sorted(d.labels("spb", "agency"))[0]
    for value in (spb_agency, krd_agency):  # whatever the label, nothing tells them apart
        hidden = correct(d.as_("Петрова"), d.krd[0], value, "k-hidden")
        unknown = correct(d.as_("Петрова"), UNKNOWN, value, "k-unknown")
        assert hidden.status_code == unknown.status_code == 422
        assert _without_request_id(hidden) == _without_request_id(unknown)
    assert d.client.app.state.corrections.query(prediction_id=d.krd[0]) == []

    # Its own operator corrects it with a label of krd's model (not of spb's).
    r = correct(d.as_("Кузнецов"), d.krd[0], spb_agency, "k-wrong-region-label")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "corrections[0].value"
    r = correct(d.as_("Кузнецов"), d.krd[0], krd_agency, "k-1")
    assert r.status_code == 201, r.text
    stored = d.client.app.state.corrections.query(prediction_id=d.krd[0])
    assert [(c.operator, c.region) for c in stored] == [("Кузнецов", "krd")]
    # The shared token corrects any region.
    assert correct(OP, d.spb[0], spb_agency, "s-env").status_code == 201

    # The corrections log shows each person their regions' corrections only.
    def log(headers: dict[str, str]) -> set[str]:
        r = d.client.get("/v1/corrections", headers=headers)
        assert r.status_code == 200, r.text
        return {c["prediction_id"] for c in r.json()["corrections"]}

    assert log(d.as_("Петрова")) == {d.spb[0]}
    assert log(d.as_("Кузнецов")) == {d.krd[0]}
    assert log(OP) == {d.spb[0], d.krd[0]}

    # One request, one region: each region has its own labels.
    items = [
        {"prediction_id": d.spb[1], "field": "urgency", "value": "high"},
        {"prediction_id": d.krd[1], "field": "urgency", "value": "high"},
    ]
    r = d.client.post("/v1/corrections", headers=d.as_("Оба"), json={"corrections": items})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "corrections[1].prediction_id"
    assert "one region" in r.text


def test_an_accounts_regions_can_change(deployment):
    d = deployment
    users = UserRepository(d.client.app.state.corrections.engine)
    users.set_regions("Петрова", ["krd"])  # takes effect at the next request
    assert _queue(d, d.as_("Петрова")) == set(d.krd)


def test_admins_retrain_and_see_only_their_regions_jobs(deployment):
    d = deployment
    jobs = d.client.app.state.retrain_jobs

    def retrain(headers: dict[str, str], body: dict | None):
        return d.client.post("/v1/admin/retrain", headers=headers, json=body)

    r = retrain(d.as_("Админ СПб"), {"region": "krd"})
    assert r.status_code == 403 and "krd" in r.json()["message"]
    r = retrain(d.as_("Админ СПб"), {"region": "xx"})
    assert r.status_code == 422 and "'xx'" in r.text and "spb, krd" in r.text
    assert jobs.current() is None  # nothing was queued
    r = retrain(d.as_("Админ СПб"), None)  # no body: the default region, as before
    assert r.status_code == 202 and r.json()["region"] == "spb"
    spb_run = r.json()["id"]
    assert retrain(d.as_("Админ СПб"), {"region": "spb"}).status_code == 409  # one at a time
    # The environment admin token acts for every region: krd gets its own job.
    r = retrain(ADM, {"region": "krd"})
    assert r.status_code == 202 and r.json()["region"] == "krd"
    krd_run = r.json()["id"]
    assert jobs.current("krd").id == krd_run and jobs.current("spb").id == spb_run

    listed = d.client.get("/v1/admin/retrain", headers=d.as_("Админ СПб")).json()["runs"]
    assert [run["id"] for run in listed] == [spb_run]
    everything = d.client.get("/v1/admin/retrain", headers=ADM).json()["runs"]
    assert {run["id"] for run in everything} == {spb_run, krd_run}
    only_krd = d.client.get("/v1/admin/retrain", headers=ADM, params={"region": "krd"}).json()
    assert [run["id"] for run in only_krd["runs"]] == [krd_run]
    assert (
        d.client.get(f"/v1/admin/retrain/{krd_run}", headers=d.as_("Админ СПб")).status_code == 404
    )
    assert d.client.get(f"/v1/admin/retrain/{krd_run}", headers=ADM).status_code == 200


def test_admins_reload_only_their_regions_models(deployment):
    d = deployment

    def reload(headers: dict[str, str], **params: str):
        return d.client.post("/v1/admin/reload", headers=headers, params=params)

    r = reload(d.as_("Админ СПб"), region="krd")
    assert r.status_code == 403 and "krd" in r.json()["message"]
    assert reload(d.as_("Админ СПб"), region="xx").status_code == 422
    assert reload(d.as_("Админ СПб")).status_code == 200  # the default region: theirs
    assert reload(ADM, region="krd").status_code == 200  # the environment token: every region
