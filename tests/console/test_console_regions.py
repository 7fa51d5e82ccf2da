"""The console of a deployment with two regions: each person sees, opens and corrects only
the appeals of their regions (another region's card is a 404), bulk accept and «Проверенные
мной» keep to them, the model page shows each of their regions' model and jobs, and an admin
retrains only their regions' models. The environment tokens act for every region."""

from __future__ import annotations

import html as htmlmod
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from app_support import running
from fastapi.testclient import TestClient
from regions_support import KRD_APPEALS, SPB_APPEALS, regional_models

from cur_ml.settings import Settings
from cur_ml.store.users import UserRepository

LIFT = "Третий день не работает лифт в подъезде, пожилые не могут выйти"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return regional_models(tmp_path_factory.mktemp("regions"))


@dataclass
class Deployment:
    app: object
    spb: list[str]  # prediction ids of each region
    krd: list[str]
    tokens: dict[str, str]  # account name → its token
    sign_in: object

    def person(self, name: str) -> TestClient:
        """A browser of `name` (an account; or `env:role:name` for an environment token)."""
        client = TestClient(self.app, follow_redirects=False)
        if name.startswith("env:"):
            _, role, typed = name.split(":")
            self.sign_in(client, self.tokens[role], typed)
        else:
            self.sign_in(client, self.tokens[name], name)
        return client


@pytest.fixture
def deployment(tmp_path, models, tokens, seed, sign_in) -> Iterator[Deployment]:
    settings = Settings(
        _env_file=None,
        model_dir=models / "{region}",
        regions=["spb", "krd"],
        database_url=f"sqlite:///{tmp_path / 'store.sqlite3'}",
        predict_token=None,
        operator_token=tokens["operator"],
        admin_token=tokens["admin"],
        model_poll_seconds=0,
        mlflow_enabled=False,
    )
    with running(settings) as client:
        users = UserRepository(client.app.state.corrections.engine)
        accounts = {
            "Петрова": ("operator", ["spb"]),
            "Кузнецов": ("operator", ["krd"]),
            "Оба": ("operator", ["spb", "krd"]),
            "Админ СПб": ("admin", ["spb"]),
        }
        issued = {n: users.add(n, role, regions)[1] for n, (role, regions) in accounts.items()}
        spb = [p["prediction_id"] for p in seed(client, SPB_APPEALS)]
        krd = [p["prediction_id"] for p in seed(client, KRD_APPEALS)]
        yield Deployment(client.app, spb, krd, {**tokens, **issued}, sign_in)


def _queue_ids(client: TestClient, query: str = "") -> set[str]:
    page = client.get("/console/" + query)
    assert page.status_code == 200, page.text
    return set(re.findall(r'<tr[^>]* data-id="([^"]+)"', page.text))


def _labels(app, region: str, head: str) -> set[str]:
    return set(app.state.regions.get(region).slot.model.label_sets()[head])


def _accept_all_form(html: str) -> dict[str, str]:
    for body in re.findall(r'<form method="post"[^>]*corrections"[^>]*>(.*?)</form>', html, re.S):
        values = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', body))
        if values.get("action") == "accept_all":
            return {k: htmlmod.unescape(v) for k, v in values.items()}
    raise AssertionError("no accept-all form")


def test_each_operator_sees_and_opens_only_their_regions_appeals(deployment):
    d = deployment
    petrova, kuznetsov, both = d.person("Петрова"), d.person("Кузнецов"), d.person("Оба")
    assert _queue_ids(petrova) == set(d.spb)
    assert _queue_ids(kuznetsov) == set(d.krd)
    assert _queue_ids(d.person("env:operator:Смена")) == set(d.spb) | set(d.krd)
    # A filter of regions for those who have several; a badge of the region on every row.
    assert 'id="filter-region"' not in petrova.get("/console/").text
    assert 'id="filter-region"' in both.get("/console/").text
    assert _queue_ids(both) == set(d.spb) | set(d.krd)
    assert _queue_ids(both, "?region=krd") == set(d.krd)
    assert _queue_ids(petrova, "?region=krd") == set(d.spb)  # not hers: the filter is dropped
    assert '<span class="region" title="Регион">krd</span>' in kuznetsov.get("/console/").text

    # Another region's appeal is a 404 by URL, as one that does not exist.
    for path in (f"/console/appeals/{d.krd[0]}", f"/console/appeals/{d.krd[0]}/similar"):
        r = petrova.get(path)
        assert r.status_code == 404 and "Обращения с таким номером предсказания нет" in r.text
    card = kuznetsov.get(f"/console/appeals/{d.krd[0]}")
    assert card.status_code == 200 and 'id="region"' in card.text
    form = _accept_all_form(card.text)
    r = petrova.post(f"/console/appeals/{d.krd[0]}/corrections", data=form)
    assert r.status_code == 403  # her session's CSRF token is not his
    form["csrf"] = re.search(r'name="csrf" value="([^"]+)"', petrova.get("/console/").text)[1]
    r = petrova.post(f"/console/appeals/{d.krd[0]}/corrections", data=form)
    assert r.status_code == 404
    assert d.app.state.corrections.query(prediction_id=d.krd[0]) == []
    # «Взять следующее» stays in her region.
    taken = petrova.get("/console/next").headers["location"]
    assert taken.split("?")[0].rsplit("/", 1)[-1] in d.spb

    # His card offers his region's labels; his acceptance is stored in his region.
    krd_only = sorted(_labels(d.app, "krd", "agency") - _labels(d.app, "spb", "agency"))
    spb_only = sorted(_labels(d.app, "spb", "agency") - _labels(d.app, "krd", "agency"))
    assert htmlmod.escape(krd_only[0]) in card.text
    assert htmlmod.escape(spb_only[0]) not in card.text
    r = kuznetsov.post(f"/console/appeals/{d.krd[0]}/corrections", data=_accept_all_form(card.text))
    assert r.status_code == 303, r.text
    stored = d.app.state.corrections.query(prediction_id=d.krd[0])
    assert stored and {(c.operator, c.region) for c in stored} == {("Кузнецов", "krd")}
    assert d.krd[0] not in _queue_ids(kuznetsov)


def test_reviewed_by_me_and_the_counts_keep_to_the_persons_regions(deployment, csrf_of):
    d = deployment
    kuznetsov, petrova = d.person("Кузнецов"), d.person("Петрова")
    for client, pid in ((kuznetsov, d.krd[1]), (petrova, d.spb[1])):
        card = client.get(f"/console/appeals/{pid}").text
        assert client.post(f"/console/appeals/{pid}/corrections", data=_accept_all_form(card))
    model_page = petrova.get("/console/model").text
    counts = re.search(r'id="per-operator">(.*?)</table>', model_page, re.S).group(1)
    assert "Петрова" in counts and "Кузнецов" not in counts
    mine = kuznetsov.get("/console/mine").text
    assert f'data-id="{d.krd[1]}"' in mine

    # His regions change: the appeal of krd is no longer his to see or to undo.
    UserRepository(d.app.state.corrections.engine).set_regions("Кузнецов", ["spb"])
    mine = kuznetsov.get("/console/mine").text
    assert f'data-id="{d.krd[1]}"' not in mine
    undo = {"csrf": csrf_of(mine), "prediction_id": d.krd[1], "base": "0"}
    r = kuznetsov.post("/console/mine/undo", data=undo)
    assert r.status_code == 409 and "Отмена невозможна" in r.text
    assert {c.source for c in d.app.state.corrections.query(prediction_id=d.krd[1])} == {"console"}
    assert _queue_ids(kuznetsov) == set(d.spb) - {d.spb[1]}


def test_bulk_accept_takes_only_the_lead_appeals_region(deployment, seed, csrf_of):
    d = deployment
    spb = [p["prediction_id"] for p in seed(d.person("Оба"), [{"text": LIFT}, {"text": LIFT}])]
    twin_krd = seed(d.person("Оба"), [{"text": LIFT, "region": "krd"}])[0]["prediction_id"]
    both = d.person("Оба")  # works in both regions: sees the krd twin in the queue
    assert {*spb, twin_krd} <= _queue_ids(both)
    page = both.get(f"/console/appeals/{spb[0]}/similar")
    group = re.findall(r'<tr class="[^"]*" data-id="([^"]+)"', page.text)
    assert group[:2] == spb and twin_krd not in group
    form = {
        "csrf": csrf_of(page.text),
        "key": re.search(r'name="key" value="([^"]+)"', page.text).group(1),
        "ids": [*spb, twin_krd],  # a forged form naming the other region's twin
        "versions": re.findall(r'name="versions" value="([^"]+)"', page.text),
    }
    r = both.post(f"/console/appeals/{spb[0]}/similar", data=form)
    assert r.status_code == 303 and r.headers["location"].endswith("done=2")
    assert d.app.state.corrections.query(prediction_id=twin_krd) == []
    assert all(d.app.state.corrections.query(prediction_id=pid) for pid in spb)


def test_the_model_page_and_retraining_per_region(deployment, csrf_of):
    d = deployment
    jobs = d.app.state.retrain_jobs
    admin_spb = d.person("Админ СПб")
    page = admin_spb.get("/console/model").text
    assert re.findall(r'data-region="(\w+)"', page) == ["spb"]  # hers only
    csrf = csrf_of(page)
    r = admin_spb.post("/console/model/retrain", data={"csrf": csrf, "region": "krd"})
    assert r.status_code == 403 and jobs.current("krd") is None
    r = admin_spb.post("/console/model/retrain", data={"csrf": csrf, "region": "spb"})
    assert r.status_code == 303 and jobs.current("spb") is not None

    env_admin = d.person("env:admin:Админ")
    page = env_admin.get("/console/model").text
    assert re.findall(r'data-region="(\w+)"', page) == ["spb", "krd"]
    krd_version = d.app.state.regions.get("krd").slot.model.version
    krd_page = env_admin.get("/console/model?region=krd").text
    assert f'id="model-version">{krd_version}<' in krd_page
    assert 'name="region" value="krd"' in krd_page  # «Переобучить» asks for krd
    r = env_admin.post("/console/model/retrain", data={"csrf": csrf_of(page), "region": "krd"})
    assert r.status_code == 303 and r.headers["location"] == "/console/model?region=krd&msg=started"
    assert jobs.current("krd") is not None and jobs.current("krd").trigger == "console"
    assert "Переобучение идёт" in env_admin.get("/console/model?region=krd").text
    # Each page lists its region's jobs: hers one (spb's), not krd's too.
    assert len(jobs.runs.recent(10)) == 2
    assert admin_spb.get("/console/model").text.count('<tr class="run-') == 1
