"""Corrections that cannot poison the model: only the served model's labels (422 naming the
closest ones), new labels only through an admin who says so (and recorded), a corrected
reason moving category and urgency with it, contradictions refused, and retraining refusing
labels nobody approved."""

from __future__ import annotations

import pandas as pd
import pytest
from corrections_support import ADM, OP, predict
from sqlalchemy import func, select

from cur_ml.model.bundle import load_model
from cur_ml.retrain.approvals import LabelBook, contradictions, suggest
from cur_ml.retrain.labels import approved_events, known_labels
from cur_ml.store.corrections import CorrectionRecord
from cur_ml.store.label_approvals import LabelApprovalRepository

APPEAL = {"id": "a1", "text": "Во дворе не вывозят мусор, баки переполнены", "district": "Невский"}
NEW_AGENCY = "СПб ГБУ «Мостотрест»"


def _post(client, *items, headers=OP, path="/v1/corrections"):
    return client.post(path, json={"corrections": list(items)}, headers=headers)


def _stored(client) -> int:
    with client.app.state.corrections.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(CorrectionRecord))


def _effective(client, pid: str) -> dict:
    r = client.get(f"/v1/predictions/{pid}", headers=OP)
    assert r.status_code == 200, r.text
    return r.json()["effective"]


@pytest.fixture(scope="module")
def book(model_a_dir) -> LabelBook:
    return LabelBook.of(load_model(model_a_dir))


def _moving_reason(book: LabelBook, pred: dict) -> str:
    """A reason whose category and urgency both differ from the prediction's."""
    return next(
        r
        for r in sorted(book.category_of)
        if book.category_of[r] != pred["category"] and book.urgency_of[r] != pred["urgency"]
    )


@pytest.fixture
def served(app_on, store_url):
    """(client, a prediction) on a fresh store of each kind."""
    with app_on(database_url=store_url) as client:
        yield client, predict(client, [APPEAL])[0]


@pytest.fixture(scope="module")
def module_client(tmp_path_factory, model_a_dir):
    from corrections_support import running, settings_for

    with running(settings_for(tmp_path_factory.mktemp("labels"), model_a_dir)) as client:
        yield client


@pytest.fixture
def fresh(module_client):
    """(client, a fresh prediction) on one SQLite app for the module."""
    return module_client, predict(module_client, [APPEAL])[0]


# ------------------------------------------------------------------ suggestions
LABELS = [
    "Мусор на детской площадке",
    "Мусор на внутридворовой территории",
    "Засор мусоропровода",
    "Неисправный лифт",
    "Неисправный домофон",
    "Повреждение кровли",
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Мусор", ["Мусор на детской площадке", "Мусор на внутридворовой территории"]),
        ("неисправный лифт", ["Неисправный лифт"]),  # the same label in another case first
        ("Неисправный лифд", ["Неисправный лифт"]),  # a typo
        ("кровли", ["Повреждение кровли"]),  # a partial word
        ("мусора во дворе", ["Мусор на детской площадке", "Мусор на внутридворовой территории"]),
        ("ООО Рога и копыта", []),
        ("<script>alert(1)</script>", []),
    ],
)
def test_suggestions_are_the_closest_labels(value, expected):
    got = suggest(value, LABELS)
    assert got[: len(expected)] == expected
    assert len(got) <= 3 and len(set(got)) == len(got)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (
            "reason",
            "Мусор",
            "нет такой причины «Мусор» (reason) у модели; ближайшие: «Мусор на детской "
            "площадке», «Мусор на внутридворовой территории», «Мусор на газонах "
            "(крупногабаритные объекты)»",
        ),
        (
            "agency",
            "ООО Рога и копыта",
            "нет такого ведомства «ООО Рога и копыта» (agency) у модели; "
            "список меток: GET /v1/model",
        ),
        (
            "category",
            "<script>alert(1)</script>",
            "нет такой категории «<script>alert(1)</script>» (category) у модели; "
            "список меток: GET /v1/model",
        ),
        (
            "reason",
            "ЯДОВИТАЯ_МЕТКА",
            "нет такой причины «ЯДОВИТАЯ_МЕТКА» (reason) у модели; список меток: GET /v1/model",
        ),
        (
            "category",
            "благоустройство",
            "нет такой категории «благоустройство» (category) у модели; ближайшие: "
            "«Благоустройство»",
        ),
    ],
)
def test_a_label_the_model_does_not_know_is_refused_with_the_closest(fresh, field, value, problem):
    client, p = fresh
    before = _stored(client)
    r = _post(client, {"prediction_id": p["prediction_id"], "field": field, "value": value})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["detail"] == [{"field": "corrections[0].value", "problem": problem}]
    assert _stored(client) == before


def test_the_suggestions_name_the_agency_meant(fresh):
    client, p = fresh
    r = _post(
        client,
        {
            "prediction_id": p["prediction_id"],
            "field": "agency",
            "value": "Жилищное агентство Невского района",
        },
    )
    assert r.status_code == 422
    assert "«СПб ГКУ ЖА Невского района»" in r.json()["detail"][0]["problem"]


def test_one_bad_label_refuses_the_request_and_is_the_only_one_named(fresh):
    client, p = fresh
    before = _stored(client)
    pid = p["prediction_id"]
    r = _post(
        client,
        {"prediction_id": pid, "field": "urgency", "value": "high"},
        {"prediction_id": pid, "field": "agency", "value": "ООО Рога и копыта"},
        {"prediction_id": pid, "field": "agency", "value": p["agency"]},
    )
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["detail"]] == ["corrections[1].value"]
    assert _stored(client) == before


def test_a_request_of_many_bad_labels_names_the_first_hundred(fresh):
    client, p = fresh
    pid = p["prediction_id"]
    items = [{"prediction_id": pid, "field": "reason", "value": f"Мусор {i}"} for i in range(1000)]
    r = _post(client, *items)
    assert r.status_code == 422
    body = r.json()
    assert len(body["detail"]) == 100 and body["message"].endswith("(and 997 more)")
    assert body["detail"][99] == {
        "field": "corrections[99].value",
        "problem": "нет такой причины «Мусор 99» (reason) у модели; ближайшие: «Мусор на "
        "детской площадке», «Мусор на внутридворовой территории», «Мусор на газонах "
        "(крупногабаритные объекты)»",
    }


def test_every_label_of_the_model_is_accepted(fresh, book):
    client, p = fresh
    pid = p["prediction_id"]
    items = [
        {"prediction_id": pid, "field": f, "value": v}
        for f in ("agency", "category")
        for v in sorted(book.labels[f])
    ]
    assert len(items) > 50
    r = _post(client, *items)
    assert r.status_code == 201, r.text
    assert not any(c["new_label"] for c in r.json()["corrections"])


# ------------------------------------------------------------------ derived fields
def test_a_corrected_reason_moves_category_and_urgency(served, book):
    client, p = served
    pid = p["prediction_id"]
    reason = _moving_reason(book, p)
    item = {"prediction_id": pid, "field": "reason", "value": reason, "idempotency_key": "r-1"}
    r = _post(client, item)
    assert r.status_code == 201, r.text
    (result,) = r.json()["corrections"]
    derived = {d["field"]: d for d in result["derived"]}
    assert set(derived) == {"category", "urgency"}
    assert (derived["category"]["old_value"], derived["category"]["value"]) == (
        p["category"],
        book.category_of[reason],
    )
    assert (derived["urgency"]["old_value"], derived["urgency"]["value"]) == (
        p["urgency"],
        book.urgency_of[reason],
    )
    assert {d["source"] for d in derived.values()} == {"derived"}
    assert all(d["id"] > result["id"] for d in derived.values())
    assert _effective(client, pid) == {
        "category": book.category_of[reason],
        "reason": reason,
        "urgency": book.urgency_of[reason],
        "agency": p["agency"],
    }
    again = _post(client, item)  # a retry: the same answer, nothing new
    assert again.status_code == 200
    assert again.json()["corrections"][0]["derived"] == result["derived"]
    assert _stored(client) == 3
    # A later reason moves them again: they were followers, not someone's own decision.
    other = next(
        x
        for x in sorted(book.category_of)
        if book.category_of[x] not in (p["category"], book.category_of[reason])
    )
    r = _post(client, {"prediction_id": pid, "field": "reason", "value": other})
    moved = {d["field"]: d["value"] for d in r.json()["corrections"][0]["derived"]}
    assert moved["category"] == book.category_of[other]
    assert _effective(client, pid)["category"] == book.category_of[other]


def test_a_field_corrected_on_its_own_does_not_follow_the_reason(served, book):
    client, p = served
    pid = p["prediction_id"]
    reason = _moving_reason(book, p)
    mine = next(c for c in sorted(book.labels["category"]) if c != book.category_of[reason])
    own = _post(client, {"prediction_id": pid, "field": "category", "value": mine})
    assert own.status_code == 201, own.text
    r = _post(client, {"prediction_id": pid, "field": "reason", "value": reason})
    assert r.status_code == 201, r.text
    assert [d["field"] for d in r.json()["corrections"][0]["derived"]] == ["urgency"]
    assert _effective(client, pid)["category"] == mine  # the operator's own decision stays


def test_a_field_given_in_the_same_request_is_not_derived(fresh, book):
    client, p = fresh
    pid = p["prediction_id"]
    reason = _moving_reason(book, p)
    r = _post(
        client,
        {"prediction_id": pid, "field": "category", "value": book.category_of[reason]},
        {"prediction_id": pid, "field": "reason", "value": reason},
    )
    assert r.status_code == 201, r.text
    first, second = r.json()["corrections"]
    assert first["derived"] == []
    assert [(d["field"], d["value"]) for d in second["derived"]] == [
        ("urgency", book.urgency_of[reason])
    ]


def test_an_acceptance_of_the_reason_moves_nothing(fresh):
    client, p = fresh
    pid = p["prediction_id"]
    r = _post(client, {"prediction_id": pid, "field": "reason", "value": p["reason"]})
    assert r.status_code == 201 and r.json()["corrections"][0]["derived"] == []


@pytest.mark.parametrize("contradicting", ["category", "urgency"])
def test_a_contradiction_in_one_request_is_refused_naming_both(served, book, contradicting):
    client, p = served
    pid = p["prediction_id"]
    reason = _moving_reason(book, p)
    implied = book.follows(reason)[contradicting]
    pool = book.labels[contradicting]
    wrong = next(v for v in sorted(pool) if v != implied)
    r = _post(
        client,
        {"prediction_id": pid, "field": "reason", "value": reason},
        {"prediction_id": pid, "field": contradicting, "value": wrong},
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [d["field"] for d in detail] == ["corrections[0].value", "corrections[1].value"]
    for d in detail:
        assert "reason" in d["problem"] and contradicting in d["problem"]
        assert f"«{implied}»" in d["problem"]
    assert _stored(client) == 0


def test_contradictions_use_the_last_reason_of_a_prediction(book):
    r1 = sorted(book.category_of)[0]
    c1 = book.category_of[r1]
    r2 = next(r for r in sorted(book.category_of) if book.category_of[r] != c1)
    items = [("p", "reason", r1), ("p", "category", c1), ("p", "reason", r2), ("q", "category", c1)]
    # The category agrees with the first reason, not with the one in force afterwards; the
    # other prediction's category is no business of this reason.
    found = contradictions(items, book)
    assert set(found) == {1, 2}
    assert contradictions(items[:2] + items[3:], book) == {}


# ------------------------------------------------------------------ new labels
def test_a_new_label_needs_an_admin_who_says_so_and_is_recorded(served):
    client, p = served
    pid = p["prediction_id"]
    item = {
        "prediction_id": pid,
        "field": "agency",
        "value": NEW_AGENCY,
        "operator": "petrova",
        "comment": "мосты переданы ГБУ",
        "idempotency_key": "new-1",
    }
    assert _post(client, {**item, "allow_new_label": True}).status_code == 422  # operator route
    assert _post(client, item, headers=ADM, path="/v1/admin/corrections").status_code == 422
    admin = {**item, "allow_new_label": True}
    assert _post(client, admin, path="/v1/admin/corrections").status_code == 403  # operator
    r = _post(client, admin, headers=ADM, path="/v1/admin/corrections")
    assert r.status_code == 201, r.text
    (stored,) = r.json()["corrections"]
    assert (stored["value"], stored["source"], stored["new_label"]) == (NEW_AGENCY, "admin", True)
    listed = client.get("/v1/admin/labels", headers=ADM)
    assert listed.status_code == 200
    (approval,) = listed.json()["approvals"]
    assert approval == {
        **approval,
        "field": "agency",
        "label": NEW_AGENCY,
        "approved_by": "petrova",
        "comment": "мосты переданы ГБУ",
        "prediction_id": pid,
        "correction_key": "new-1",
    }
    assert approval["at"]
    assert client.get("/v1/admin/labels", headers=OP).status_code == 403
    # Approved once, the label is one operators may choose.
    again = _post(client, {"prediction_id": pid, "field": "agency", "value": NEW_AGENCY})
    assert again.status_code == 201 and again.json()["corrections"][0]["new_label"] is True
    assert LabelApprovalRepository(client.app.state.corrections.engine).by_field() == {
        "agency": {NEW_AGENCY}
    }


def test_a_new_reason_moves_nothing_and_urgency_is_never_new(fresh):
    client, p = fresh
    pid = p["prediction_id"]
    new = {
        "prediction_id": pid,
        "field": "reason",
        "value": "Новая причина",
        "allow_new_label": True,
    }
    r = _post(client, new, headers=ADM, path="/v1/admin/corrections")
    assert r.status_code == 201, r.text
    assert r.json()["corrections"][0]["derived"] == []  # the taxonomy does not know it yet
    urgent = {"prediction_id": pid, "field": "urgency", "value": "urgent", "allow_new_label": True}
    r = _post(client, urgent, headers=ADM, path="/v1/admin/corrections")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "corrections[0].value"


def test_a_label_approved_on_its_own(fresh):
    client, p = fresh
    body = {"field": "category", "label": " Мосты ", "approved_by": "ivanov"}
    first = client.post("/v1/admin/labels", json=body, headers=ADM)
    again = client.post("/v1/admin/labels", json={**body, "approved_by": "x"}, headers=ADM)
    assert (first.status_code, again.status_code) == (201, 200), first.text
    assert first.json()["label"] == "Мосты" and first.json()["created"] is True
    assert again.json()["approved_by"] == "ivanov" and again.json()["created"] is False
    r = _post(client, {"prediction_id": p["prediction_id"], "field": "category", "value": "Мосты"})
    assert r.status_code == 201, r.text
    listed = client.get("/v1/admin/labels", params={"field": "category"}, headers=ADM).json()
    assert "Мосты" in [a["label"] for a in listed["approvals"]]
    for bad, field in [
        ({"field": "urgency", "label": "urgent"}, "field"),
        ({"field": "reason", "label": "  "}, "label"),
        ({"field": "reason"}, "label"),
        ({"field": "reason", "label": "я" * 513}, "label"),
    ]:
        r = client.post("/v1/admin/labels", json=bad, headers=ADM)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text


# ------------------------------------------------------------------ retraining
def _events(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"appeal_id": str(i), "at": "2024-01-01", "field": f, "new": v, "source": s}
            for i, (f, v, s) in enumerate(rows)
        ]
    )


def test_retraining_refuses_labels_never_approved():
    base = pd.DataFrame(
        {
            "category": ["Дороги", "Кровля"],
            "reason": ["Яма", "Течёт крыша"],
            "urgency": ["high", "medium"],
            "agency": ["ЖА", "Ленсвет"],
        }
    )
    events = _events(
        [
            ("reason", "Яма", "import"),  # in the base data
            ("reason", "ЯДОВИТАЯ_МЕТКА", "api"),  # free text stored before labels were checked
            ("agency", "ООО Рога и копыта", "api"),
            ("agency", NEW_AGENCY, "admin"),  # approved by an admin
            ("agency", NEW_AGENCY, "import"),
            ("urgency", "urgent", "api"),
            ("category", "<script>", "api"),
            ("category", "Кровля", "api"),
            ("reason", "Открыт люк", "import"),  # history: a label the base data never had
            ("reason", "Открыт люк", "api"),  # the served model knew it: checked on entry
        ]
    )
    served = {"reason": ["Яма", "Открыт люк"], "urgency": ["high", "medium", "low"]}
    kept, refused = approved_events(
        events, known_labels(base), {"agency": {NEW_AGENCY}}, served=served
    )
    assert list(kept["appeal_id"]) == ["0", "3", "4", "7", "9"]
    assert refused == {"category": 1, "reason": 2, "urgency": 1, "agency": 1}
    # Without the served model's labels, only the base data and approvals count.
    kept, refused = approved_events(events, known_labels(base), {})
    assert list(kept["appeal_id"]) == ["0", "7"]
    assert refused == {"category": 1, "reason": 3, "urgency": 1, "agency": 3}


def test_known_labels_unite_frames_and_label_sets():
    base = pd.DataFrame({"reason": ["Яма", ""], "agency": ["ЖА", "ЖА"]})
    got = known_labels(base, {"reason": ["Течёт крыша"], "category": ["Дороги"]})
    assert got == {
        "category": {"Дороги"},
        "reason": {"Яма", "Течёт крыша"},
        "urgency": set(),
        "agency": {"ЖА"},
    }
