"""The appeal card: text and decisions shown safely; accepting and correcting store
corrections in the repository the API uses, once per form, only with the CSRF token."""

from __future__ import annotations

import html as htmlmod
import re

import pytest
from markupsafe import escape

from cur_ml.store.review_progress import needed_fields


def _form(html: str, field: str | None) -> dict[str, str]:
    """Hidden fields of the card's form for `field` (None: the accept-all form)."""
    forms = re.findall(r"<form method=\"post\"[^>]*corrections\"[^>]*>(.*?)</form>", html, re.S)
    for body in forms:
        values = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', body))
        if (field is None and values.get("action") == "accept_all") or values.get("field") == field:
            return {k: htmlmod.unescape(v) for k, v in values.items()}
    raise AssertionError(f"no form for {field}")


@pytest.fixture
def card(console, sign_in):
    """(client, prediction_id, card html) for the first appeal of the queue."""
    sign_in(console)
    first = console.app.state.review_queue.page(limit=1)[0]
    page = console.get(f"/console/appeals/{first.prediction_id}?pos=0")
    assert page.status_code == 200
    return console, first.prediction_id, page.text


def _stored(client, pid):
    return client.app.state.corrections.query(prediction_id=pid)


def test_the_card_shows_text_decisions_alternatives_and_labels(card):
    client, pid, html = card
    record = client.app.state.predictions.get(pid)
    shown = re.search(r'<div class="text" id="appeal-text" lang="ru">(.*?)</div>', html, re.S)
    assert htmlmod.unescape(re.sub(r"<[^>]+>", "", shown.group(1))) == record.appeal["text"]
    for head in ("category", "reason", "urgency", "agency"):
        assert f'id="head-{head}"' in html
        for n, alt in enumerate(record.prediction["alternatives"][head], start=1):
            assert f'data-alt="{n}"' in html
            assert f'value="{escape(alt["label"])}"' in html
    labels = client.app.state.slot.model.label_sets()
    options = re.search(r'<datalist id="labels-agency">(.*?)</datalist>', html, re.S).group(1)
    assert options.count("<option") == len(labels["agency"])
    assert 'class="hl hl-1"' in html  # the deciding words
    assert "Исправлений пока нет." in html
    assert "data-autofocus" in html


def test_accept_all_stores_the_predictions_and_goes_to_the_next(card):
    client, pid, html = card
    pending = client.app.state.review_queue.counts()["pending"]
    form = _form(html, None)
    r = client.post(f"/console/appeals/{pid}/corrections", data=form)
    assert r.status_code == 303
    assert r.headers["location"] == f"/console/next?current={pid}"
    stored = _stored(client, pid)
    record = client.app.state.predictions.get(pid)
    assert {(c.field, c.new_value) for c in stored} == {
        (h, getattr(record, h)) for h in ("category", "reason", "urgency", "agency")
    }
    assert {(c.operator, c.source) for c in stored} == {("Иванова", "console")}
    assert all(c.old_value == c.new_value for c in stored)
    assert client.app.state.review_queue.counts()["pending"] == pending - 1
    nxt = client.get(r.headers["location"])
    assert nxt.status_code == 303 and pid not in nxt.headers["location"]
    # The same form sent again (a double click, a reload) stores nothing more.
    client.post(f"/console/appeals/{pid}/corrections", data=form)
    assert len(_stored(client, pid)) == 4


def test_choosing_an_alternative_corrects_one_field_once(card):
    client, pid, html = card
    record = client.app.state.predictions.get(pid)
    alternative = next(
        a["label"]
        for a in record.prediction["alternatives"]["agency"]
        if a["label"] != record.agency
    )
    form = {**_form(html, "agency"), "value": alternative}
    for _ in range(2):  # double submission
        r = client.post(f"/console/appeals/{pid}/corrections", data=form)
        assert r.status_code == 303
    assert r.headers["location"] == f"/console/appeals/{pid}?saved=agency"
    [stored] = _stored(client, pid)
    assert (stored.field, stored.new_value, stored.old_value) == (
        "agency",
        alternative,
        record.agency,
    )
    page = client.get(r.headers["location"]).text
    assert "Ведомство: исправление сохранено." in page
    assert "исправлено (Иванова)" in page
    assert 'id="history"' in page and escape(alternative) in page
    # The same form with another value: the key is spent, nothing is overwritten.
    other = {**form, "value": record.agency}
    assert client.post(f"/console/appeals/{pid}/corrections", data=other).status_code == 409
    assert len(_stored(client, pid)) == 1


def test_any_label_from_the_list_and_urgency_in_russian(card):
    client, pid, html = card
    model = client.app.state.slot.model
    record = client.app.state.predictions.get(pid)
    tax = model.classifier.taxonomy_
    # A reason of another category: it moves category (and urgency) with it.
    reason = next(
        r for r in reversed(model.label_sets()["reason"]) if tax.category_of[r] != record.category
    )
    implied = {"category": tax.category_of[reason], "urgency": tax.urgency_of[reason]}
    r = client.post(
        f"/console/appeals/{pid}/corrections", data={**_form(html, "reason"), "custom": reason}
    )
    assert r.status_code == 303
    html = client.get(r.headers["location"]).text  # the card after the save (a new version)
    r = client.post(
        f"/console/appeals/{pid}/corrections", data={**_form(html, "urgency"), "custom": "низкая"}
    )
    assert r.status_code == 303
    followers = [(f, v, "derived") for f, v in implied.items() if v != getattr(record, f)]
    assert [(c.field, c.new_value, c.source) for c in _stored(client, pid)] == [
        ("reason", reason, "console"),
        *followers,
        ("urgency", "low", "console"),  # corrected on its own, after the reason
    ]


@pytest.mark.parametrize(
    ("field", "values", "problem"),
    [
        ("agency", {"custom": "Министерство магии"}, "нет среди меток модели"),
        ("agency", {"custom": "  "}, "выберите значение из списка"),
        ("nonsense", {"value": "x"}, "Неизвестное действие."),
    ],
)
def test_values_outside_the_label_sets_are_refused(card, field, values, problem):
    client, pid, html = card
    form = {**_form(html, "agency"), "field": field, **values}
    r = client.post(f"/console/appeals/{pid}/corrections", data=form)
    assert r.status_code == 422
    assert problem in r.text
    assert _stored(client, pid) == []


def test_a_form_without_the_sessions_csrf_token_stores_nothing(card, app_factory, csrf_of):
    client, pid, html = card
    form = _form(html, None)
    for bad in ({**form, "csrf": "forged"}, {k: v for k, v in form.items() if k != "csrf"}):
        r = client.post(f"/console/appeals/{pid}/corrections", data=bad)
        assert r.status_code == 403
        assert "Форма устарела" in r.text
    assert (
        client.post(
            f"/console/appeals/{pid}/corrections", data={**form, "key": "short"}
        ).status_code
        == 403
    )
    assert _stored(client, pid) == []


def test_corrections_from_the_api_show_in_the_history(card, tokens):
    client, pid, _ = card
    record = client.app.state.predictions.get(pid)
    r = client.post(
        "/v1/corrections",
        json={
            "corrections": [
                {"prediction_id": pid, "field": "urgency", "value": "high", "operator": "робот"}
            ]
        },
        headers={"Authorization": f"Bearer {tokens['operator']}"},
    )
    assert r.status_code == 201, r.text
    page = client.get(f"/console/appeals/{pid}").text
    assert "робот" in page
    assert record.needs_review
    # Review by field: the appeal is reviewed once its flagged fields are, and urgency alone
    # is rarely all of them.
    needed = needed_fields(True, record.prediction["review_reasons"])
    status = "проверено" if set(needed) <= {"urgency"} else "в очереди"
    assert re.search(rf'id="status">\s*{status}\s*<', page)


def test_an_unknown_appeal_is_a_russian_404(card):
    client, _, _ = card
    r = client.get("/console/appeals/no-such-id")
    assert r.status_code == 404
    assert "Обращения с таким номером предсказания нет." in r.text


def test_markup_in_an_appeal_is_shown_as_text(console, sign_in, seed):
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)> Яма во дворе & "кавычки"'
    [prediction] = seed(console, [{"id": "<b>id</b>", "text": evil, "district": "<i>р</i>"}])
    sign_in(console)
    page = console.get(f"/console/appeals/{prediction['prediction_id']}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&amp; " in page
    assert "<b>id</b>" not in page and "&lt;b&gt;id&lt;/b&gt;" in page
    assert "<i>р</i>" not in page
    if prediction["needs_review"]:
        queue = console.get("/console/").text
        assert "<script>alert" not in queue and "&lt;script&gt;" in queue


def test_accept_all_keeps_the_fields_already_corrected(card):
    client, pid, html = card
    labels = client.app.state.slot.model.label_sets()
    agency = labels["agency"][0]
    r = client.post(
        f"/console/appeals/{pid}/corrections", data={**_form(html, "agency"), "custom": agency}
    )
    html = client.get(r.headers["location"]).text
    client.post(f"/console/appeals/{pid}/corrections", data=_form(html, None))
    stored = _stored(client, pid)
    assert sorted(c.field for c in stored) == ["agency", "category", "reason", "urgency"]
    assert [c.new_value for c in stored if c.field == "agency"] == [agency]
