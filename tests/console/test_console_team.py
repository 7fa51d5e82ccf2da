"""The console for a team (SQLite and PostgreSQL): «Следующее» hands two operators different
appeals, a save over someone's newer change is a 409 that shows the change, review by field,
a corrected reason shows what it moved, comments, «Проверенные мной» with undo, bulk accept
of near-identical appeals, and corrections per operator and day on the model page."""

from __future__ import annotations

import html as htmlmod
import re
from collections.abc import Iterator

import pytest
from app_support import PG_URL, fresh_schema, reachable
from fastapi.testclient import TestClient

from cur_ml.store.corrections import effective_labels
from cur_ml.store.review_progress import needed_fields

#: Near-identical appeals (the same complaint in other words, and a copy) and one apart.
LIFT = [
    {"id": "lift-1", "text": "Третий день не работает лифт в подъезде, пожилые не могут выйти"},
    {"id": "lift-2", "text": "третий день не работает лифт в подъезде, пожилые не могут выйти!!"},
    {"id": "lift-3", "text": "Не работает лифт в подъезде третий день, пожилые не могут выйти"},
    {"id": "other", "text": "Во дворе переполнены мусорные баки, мусор не вывозят неделю"},
]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    why = reachable(PG_URL)
    if why is not None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({why}); set CUR_ML_TEST_POSTGRES_URL")
    with fresh_schema(PG_URL) as url:
        yield url


@pytest.fixture
def team(store_url, app_factory, seed, sign_in) -> Iterator[tuple[TestClient, TestClient]]:
    """Two operators (two browsers) signed in to one app with the demo appeals predicted."""
    with app_factory(database_url=store_url) as petrova:
        seed(petrova)
        sidorov = TestClient(petrova.app, follow_redirects=False)
        sign_in(petrova, name="Петрова")
        sign_in(sidorov, name="Сидоров")
        yield petrova, sidorov


def _form(html: str, field: str | None) -> dict[str, str]:
    """Hidden fields of the card's form for `field` (None: the accept-all form)."""
    forms = re.findall(r"<form method=\"post\"[^>]*corrections\"[^>]*>(.*?)</form>", html, re.S)
    for body in forms:
        values = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', body))
        if (field is None and values.get("action") == "accept_all") or values.get("field") == field:
            return {k: htmlmod.unescape(v) for k, v in values.items()}
    raise AssertionError(f"no form for {field}")


def _opened(client: TestClient, url: str = "/console/next") -> tuple[str, str]:
    """(prediction_id, card html) of the appeal `url` is (or sends the operator to)."""
    if url.startswith("/console/appeals/"):
        page = client.get(url)
        assert page.status_code == 200
        return url.rsplit("/", 1)[-1], page.text
    r = client.get(url)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith("/console/appeals/"), location
    page = client.get(location)
    assert page.status_code == 200
    return location.split("?")[0].rsplit("/", 1)[-1], page.text


def _other_reason(client: TestClient, record) -> str:
    """A reason of another category than the appeal's (it moves the category with it)."""
    model = client.app.state.slot.model
    tax = model.classifier.taxonomy_
    return next(r for r in model.label_sets()["reason"] if tax.category_of[r] != record.category)


def test_two_operators_taking_the_next_appeal_get_different_ones(team):
    petrova, sidorov = team
    first, _ = _opened(petrova)
    second, page = _opened(sidorov)
    assert first != second
    assert 'id="held"' not in page  # his own
    queue = sidorov.get("/console/").text
    assert "открыто: Петрова" in queue and "открыто: Сидоров" not in queue
    # Opening her appeal anyway says who holds it.
    held = sidorov.get(f"/console/appeals/{first}").text
    assert 'id="held"' in held and "открыто у Петрова" in held
    # Once she has reviewed it, it is hers no more and leaves the queue.
    _, mine = _opened(petrova, f"/console/appeals/{first}")
    r = petrova.post(f"/console/appeals/{first}/corrections", data=_form(mine, None))
    assert r.status_code == 303
    assert first not in sidorov.get("/console/").text


def test_a_save_over_a_newer_version_is_a_409_that_shows_the_change(team):
    petrova, sidorov = team
    pid, hers = _opened(petrova)
    _, his = _opened(sidorov, f"/console/appeals/{pid}")
    record = petrova.app.state.predictions.get(pid)
    reason = _other_reason(petrova, record)
    r = petrova.post(
        f"/console/appeals/{pid}/corrections", data={**_form(hers, "reason"), "custom": reason}
    )
    assert r.status_code == 303

    agency = petrova.app.state.slot.model.label_sets()["agency"][0]
    stale = {**_form(his, "agency"), "custom": agency}
    r = sidorov.post(f"/console/appeals/{pid}/corrections", data=stale)
    assert r.status_code == 409
    assert 'id="conflict"' in r.text and "Не сохранено" in r.text
    conflict = re.search(r'id="conflict">(.*?)</div>', r.text, re.S).group(1)
    assert "Петрова" in conflict and "Причина" in conflict and htmlmod.escape(reason) in conflict
    stored = petrova.app.state.corrections.query(prediction_id=pid)
    assert all(c.operator == "Петрова" for c in stored)  # his save stored nothing
    # He reloads (the card offers it) and saves on top of her change.
    reload = re.search(r'href="([^"]+)" id="reload"', r.text).group(1)
    fresh = sidorov.get(htmlmod.unescape(reload)).text
    r = sidorov.post(
        f"/console/appeals/{pid}/corrections", data={**_form(fresh, "agency"), "custom": agency}
    )
    assert r.status_code == 303
    latest = effective_labels(record, petrova.app.state.corrections.query(prediction_id=pid))
    assert (latest["reason"], latest["agency"]) == (reason, agency)


def test_a_corrected_reason_moves_the_category_and_the_appeal_waits_for_the_rest(team):
    petrova, _ = team
    pid, page = _opened(petrova)
    record = petrova.app.state.predictions.get(pid)
    reason = _other_reason(petrova, record)
    category = petrova.app.state.slot.model.classifier.taxonomy_.category_of[reason]
    r = petrova.post(
        f"/console/appeals/{pid}/corrections", data={**_form(page, "reason"), "custom": reason}
    )
    card = petrova.get(r.headers["location"]).text
    assert "По причине изменены: категория" in card
    assert f"«{htmlmod.escape(record.category)}» → «{htmlmod.escape(category)}»" in card
    shown = re.search(r'id="head-category".*?<strong>(.*?)</strong>(.*?)</h2>', card, re.S)
    assert htmlmod.unescape(shown.group(1)) == category
    assert "следует из причины" in shown.group(2)
    needed = set(needed_fields(True, record.prediction["review_reasons"]))
    if needed - {"category", "reason", "urgency"}:  # the agency was flagged too
        assert re.search(r'id="status">\s*в очереди', card)
        assert "осталось проверить: ведомство" in card
        assert pid in [r.prediction_id for r in petrova.app.state.review_queue.page(limit=100)]
    r = petrova.post(f"/console/appeals/{pid}/corrections", data=_form(card, None))
    assert r.status_code == 303
    stored = petrova.app.state.corrections.query(prediction_id=pid)
    assert [c.new_value for c in stored if c.field == "category"] == [category]  # not re-set
    assert pid not in [r.prediction_id for r in petrova.app.state.review_queue.page(limit=100)]


def test_a_comment_goes_with_the_correction_and_shows_in_the_history(team, tokens):
    petrova, _ = team
    pid, page = _opened(petrova)
    agency = petrova.app.state.slot.model.label_sets()["agency"][-1]
    form = {**_form(page, "agency"), "custom": agency, "comment": "  дом  обслуживает ЖА\n"}
    r = petrova.post(f"/console/appeals/{pid}/corrections", data=form)
    assert r.status_code == 303
    [stored] = petrova.app.state.corrections.query(prediction_id=pid)
    assert stored.comment == "дом обслуживает ЖА"
    assert '<td class="comment">дом обслуживает ЖА</td>' in petrova.get(r.headers["location"]).text
    api = petrova.get(
        "/v1/corrections",
        params={"prediction_id": pid},
        headers={"Authorization": f"Bearer {tokens['operator']}"},
    )
    assert api.json()["corrections"][0]["comment"] == "дом обслуживает ЖА"


def test_reviewed_by_me_with_undo(team, csrf_of):
    petrova, sidorov = team
    pid, page = _opened(petrova)
    record = petrova.app.state.predictions.get(pid)
    reason = _other_reason(petrova, record)
    r = petrova.post(
        f"/console/appeals/{pid}/corrections", data={**_form(page, "reason"), "custom": reason}
    )
    r = petrova.post(
        f"/console/appeals/{pid}/corrections",
        data=_form(petrova.get(r.headers["location"]).text, None),
    )
    assert pid not in [x.prediction_id for x in petrova.app.state.review_queue.page(limit=100)]
    assert "Вы ещё ничего не проверили." in sidorov.get("/console/mine").text

    mine = petrova.get("/console/mine").text
    row = re.search(rf'<tr data-id="{pid}">(.*?)</tr>', mine, re.S).group(1)
    assert "проверено" in row and htmlmod.escape(reason) in row
    version = re.search(r'name="base" value="(\d+)"', row).group(1)
    hers = len(petrova.app.state.corrections.query(prediction_id=pid))
    undo = {"csrf": csrf_of(mine), "prediction_id": pid, "base": version}
    r = petrova.post("/console/mine/undo", data=undo)
    assert r.status_code == 303 and r.headers["location"] == "/console/mine?msg=undone"

    history = petrova.app.state.corrections.query(prediction_id=pid)
    assert effective_labels(record, history) == {
        h: getattr(record, h) for h in ("category", "reason", "urgency", "agency")
    }
    assert len(history) == 2 * hers  # one undo row appended per row of hers, history kept
    assert {c.source for c in history[hers:]} == {"undo"}
    assert pid in [x.prediction_id for x in petrova.app.state.review_queue.page(limit=100)]
    row = re.search(rf'<tr data-id="{pid}">(.*?)</tr>', petrova.get("/console/mine").text, re.S)
    assert "отменено" in row.group(1) and "Отменить" not in row.group(1)
    again = petrova.post("/console/mine/undo", data=undo)
    assert again.status_code == 409 and "Отмена невозможна" in again.text


def test_bulk_accept_closes_a_group_of_near_duplicates(team, seed, csrf_of):
    petrova, _ = team
    preds = seed(petrova, LIFT)
    flagged = {p["id"]: p for p in preds if p["needs_review"]}
    assert {"lift-1", "lift-2", "lift-3"} <= set(flagged), "the strict model flags them all"
    lead = flagged["lift-1"]["prediction_id"]
    page = petrova.get(f"/console/appeals/{lead}/similar")
    assert page.status_code == 200
    group = re.findall(r'<tr class="[^"]*" data-id="([^"]+)"', page.text)
    twins = [flagged[k]["prediction_id"] for k in ("lift-2", "lift-3")]
    assert group[0] == lead and set(twins) <= set(group[1:])
    assert all(p["prediction_id"] not in group for p in preds if p["id"] == "other")
    assert "тот же текст" in page.text  # lift-2 is a copy, give or take case and punctuation

    form = {
        "csrf": csrf_of(page.text),
        "key": re.search(r'name="key" value="([^"]+)"', page.text).group(1),
        "ids": [lead, *twins],
        "versions": re.findall(r'name="versions" value="([^"]+)"', page.text),
        "comment": "одна авария, три жалобы",
    }
    pending = petrova.app.state.review_queue.counts()["pending"]
    r = petrova.post(f"/console/appeals/{lead}/similar", data=form)
    assert r.status_code == 303, r.text
    assert petrova.app.state.review_queue.counts()["pending"] == pending - 3
    for pid in (lead, *twins):
        stored = petrova.app.state.corrections.query(prediction_id=pid)
        assert stored and all(c.new_value == c.old_value for c in stored)  # accepted as they are
        assert {(c.operator, c.comment) for c in stored} == {("Петрова", "одна авария, три жалобы")}
    done = petrova.get(r.headers["location"]).text
    assert "Принято обращений: 3." in done


def test_a_bulk_accept_over_a_changed_appeal_stores_nothing(team, seed, csrf_of, tokens):
    petrova, _ = team
    preds = {p["id"]: p for p in seed(petrova, LIFT)}
    lead, twin = preds["lift-1"]["prediction_id"], preds["lift-2"]["prediction_id"]
    page = petrova.get(f"/console/appeals/{lead}/similar").text
    record = petrova.app.state.predictions.get(twin)
    r = petrova.post(  # someone corrects the twin through the API meanwhile
        "/v1/corrections",
        json={"corrections": [{"prediction_id": twin, "field": "urgency", "value": "high"}]},
        headers={"Authorization": f"Bearer {tokens['operator']}"},
    )
    assert r.status_code == 201, r.text
    form = {
        "csrf": csrf_of(page),
        "key": re.search(r'name="key" value="([^"]+)"', page).group(1),
        "ids": [lead, twin],
        "versions": re.findall(r'name="versions" value="([^"]+)"', page),
    }
    r = petrova.post(f"/console/appeals/{lead}/similar", data=form)
    assert r.status_code == 409 and 'id="conflict"' in r.text
    assert petrova.app.state.corrections.query(prediction_id=lead) == []
    assert len(petrova.app.state.corrections.query(prediction_id=twin)) == 1
    assert record.needs_review


def test_the_model_page_counts_corrections_per_operator_and_day(team):
    petrova, sidorov = team
    pid, page = _opened(petrova)
    petrova.post(f"/console/appeals/{pid}/corrections", data=_form(page, None))  # 4 accepted
    pid, page = _opened(sidorov)
    agency = sidorov.app.state.slot.model.label_sets()["agency"][-1]
    record = sidorov.app.state.predictions.get(pid)
    sidorov.post(
        f"/console/appeals/{pid}/corrections", data={**_form(page, "agency"), "custom": agency}
    )
    table = re.search(r'id="per-operator">(.*?)</table>', sidorov.get("/console/model").text, re.S)
    rows = [
        [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        for tr in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
        if "<td" in tr
    ]
    changed = int(agency != record.agency)
    assert [r[1:] for r in rows] == [
        ["Петрова", "0", "4", "4"],
        ["Сидоров", str(changed), str(1 - changed), "1"],
    ]
