"""`GET /v1/review-queue` around deadlines: overdue first, then urgency, then confidence;
filters by urgency, category, reason, agency, district and review reason; text search
(PostgreSQL full-text with `russian`, SQLite substrings). Each on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from corrections_support import OP, fresh_schema, running, settings_for

from cur_ml.api.schemas import ReviewItem
from cur_ml.store import make_engine, prediction_row, upgrade
from cur_ml.store.review import ReviewFilters, ReviewQueue

NOW = datetime.now(UTC).replace(microsecond=0)
MSK = timezone(timedelta(hours=3))

#: key: (urgency, lowest confidence, due in hours (None: no deadline), category, reason,
#: agency, district, review reasons, text)
ROWS = {
    "late-low": (
        "low", 0.90, -5, "ЖКХ", "Лифт", "ЖА", "Невский",
        ["small_margin:agency"], "Не работает лифт в подъезде",
    ),
    "late-high": (
        "high", 0.50, -30, "ЖКХ", "Лифт", "ГКУ", "Кировский",
        ["low_confidence:reason"], "Лифты стоят вторую неделю, лифтёр не приходит",
    ),
    "high-unsure": (
        "high", 0.10, 48, "Благоустройство", "Яма", "ЖА", "Невский",
        ["low_confidence:category", "place_unknown"], "Яма во дворе у дома",
    ),
    "high-sure": (
        "high", 0.80, 24, "Благоустройство", "Яма", "ГКУ", "Кировский",
        ["low_confidence:agency"], "Во дворе огромные ямы",
    ),
    "medium": (
        "medium", 0.20, 2, "ЖКХ", "Мусор", "ЖА", "Невский",
        ["text_too_short"], "Мусор не вывозят",
    ),
    "low": (
        "low", 0.05, 72, "Благоустройство", "Дерево", "ЖА", None,
        ["low_confidence:reason"], "Ёлка упала на детской площадке",
    ),
    "no-deadline": (
        "high", 0.30, None, "ЖКХ", "Крыша", "ЖА", "Невский",
        ["small_margin:reason"], "Течёт крыша, вода в квартире",
    ),
}  # fmt: skip
ORDER = ["late-high", "late-low", "high-unsure", "no-deadline", "high-sure", "medium", "low"]


def _pid(key: str) -> str:
    return f"00000000-0000-4000-8000-{list(ROWS).index(key):012d}"


def _due(hours: int | None) -> str | None:
    """`due_at` as the model writes it: in the appeal's own offset (Moscow here)."""
    if hours is None:
        return None
    return (NOW + timedelta(hours=hours)).astimezone(MSK).isoformat()


def _rows() -> list[dict]:
    rows = []
    for key, (urgency, low, hours, category, reason, agency, district, why, text) in ROWS.items():
        pred = {
            "prediction_id": _pid(key),
            "id": key,
            "model_version": "test-a",
            "category": category,
            "reason": reason,
            "urgency": urgency,
            "agency": agency,
            "confidence": {"category": 0.95, "reason": low, "urgency": 0.97, "agency": 0.99},
            "alternatives": None,
            "needs_review": True,
            "review_reasons": why,
            "deadline_days": None if hours is None else 1,
            "due_at": _due(hours),
        }
        appeal = {"id": key, "text": text, **({"district": district} if district else {})}
        rows.append(prediction_row(appeal, pred, at=NOW - timedelta(minutes=len(rows))))
    return rows


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def queue(request, tmp_path_factory, model_a_dir):
    """One app per store for the whole module: these tests only read the queue."""
    tmp = tmp_path_factory.mktemp("deadlines")
    if request.param == "sqlite":
        store = nullcontext(f"sqlite:///{tmp / 'store.sqlite3'}")
    else:
        store = fresh_schema(request.getfixturevalue("postgres"))
    with store as url, running(settings_for(tmp, model_a_dir, database_url=url)) as client:
        client.app.state.predictions.add_many(_rows())
        yield client


def _keys(client, **params) -> list[str]:
    r = client.get("/v1/review-queue", params=params, headers=OP)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


def test_overdue_first_then_urgency_then_confidence(queue):
    body = queue.get("/v1/review-queue", headers=OP).json()
    assert [i["id"] for i in body["items"]] == ORDER
    overdue = {i["id"]: i["overdue"] for i in body["items"]}
    assert overdue == {
        **{k: False for k in ORDER},
        "late-high": True,
        "late-low": True,
        "no-deadline": None,
    }
    ReviewItem.model_validate(body["items"][0])
    assert body["items"][0]["due_at"] == _due(-30)
    counts = queue.app.state.review_queue.counts()
    assert (counts["pending"], counts["overdue"]) == (7, 2)
    # Paging keeps the order.
    pages = [_keys(queue, offset=o, limit=3) for o in (0, 3, 6)]
    assert pages == [ORDER[:3], ORDER[3:6], ORDER[6:]]


def test_an_appeal_becomes_overdue_when_its_deadline_passes(queue):
    store = queue.app.state.review_queue
    later = NOW + timedelta(hours=3)  # "medium" (due in 2 h) is late by then
    order = [r.appeal_id for r in store.page(now=later)]
    late, in_time = ["late-high", "medium", "late-low"], ["high-unsure", "no-deadline"]
    assert order == [*late, *in_time, "high-sure", "low"]
    assert store.counts(now=later)["overdue"] == 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"urgency": "high"}, ["late-high", "high-unsure", "no-deadline", "high-sure"]),
        ({"urgency": "medium"}, ["medium"]),
        ({"category": "Благоустройство"}, ["high-unsure", "high-sure", "low"]),
        ({"reason": "Лифт"}, ["late-high", "late-low"]),
        ({"agency": "ГКУ"}, ["late-high", "high-sure"]),
        ({"district": "Невский"}, ["late-low", "high-unsure", "no-deadline", "medium"]),
        ({"review_reason": "low_confidence"}, ["late-high", "high-unsure", "high-sure", "low"]),
        ({"review_reason": "low_confidence:reason"}, ["late-high", "low"]),
        ({"review_reason": "small_margin"}, ["late-low", "no-deadline"]),
        ({"review_reason": "place_unknown"}, ["high-unsure"]),
        ({"review_reason": "low_conf"}, []),  # whole kinds only
        ({"review_reason": "low%"}, []),  # LIKE's wildcards are only characters
        ({"urgency": "high", "district": "Кировский"}, ["late-high", "high-sure"]),
        ({"reason": "Яма", "review_reason": "place_unknown"}, ["high-unsure"]),
    ],
)
def test_filters(queue, params, expected):
    assert _keys(queue, **params) == expected


def test_bad_filters_are_named(queue):
    r = queue.get("/v1/review-queue", params={"urgency": "срочно"}, headers=OP)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "urgency"
    r = queue.get("/v1/review-queue", params={"q": "л" * 201}, headers=OP)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "q"


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("лифт", ["late-high", "late-low"]),
        ("ЛИФТ подъезд", ["late-low"]),  # every word, any case
        ("Ёлка", ["low"]),
        ("крыша течёт", ["no-deadline"]),
        ("!!!", ORDER),  # no word: no search
        ("самокат", []),
    ],
)
def test_search_on_both_stores(queue, q, expected):
    assert _keys(queue, q=q) == expected


def test_search_with_filters(queue):
    assert _keys(queue, q="лифт", urgency="high") == ["late-high"]
    assert _keys(queue, q="двор", district="Кировский") == ["high-sure"]


@pytest.mark.parametrize(
    ("q", "on_postgresql", "on_sqlite"),
    [
        # PostgreSQL stems (`russian`): «лифты» finds «лифт»; SQLite finds the substring only.
        ("лифты", ["late-high", "late-low"], ["late-high"]),
        ("ямы", ["high-unsure", "high-sure"], ["high-sure"]),
        # Both: a stem or part of a word, «ё» as «е»; PostgreSQL only whole stems.
        ("ям", ["high-unsure", "high-sure"], ["high-unsure", "high-sure"]),
        ("лифтер", ["late-high"], ["late-high"]),
        ("подъез", [], ["late-low"]),
        # PostgreSQL reads web-search syntax; SQLite looks for every word.
        ("лифт -подъезд", ["late-high"], ["late-low"]),
        ('"течёт крыша"', ["no-deadline"], ["no-deadline"]),
        ('"крыша течёт"', [], ["no-deadline"]),
        ("100%", [], []),  # '%' is a character, not a wildcard
    ],
)
def test_search_differs_by_store_as_documented(queue, q, on_postgresql, on_sqlite):
    dialect = queue.app.state.review_queue.engine.dialect.name
    assert _keys(queue, q=q) == (on_postgresql if dialect == "postgresql" else on_sqlite)


def test_postgresql_search_uses_the_text_index(pg_store):
    """The statement the queue sends can use the GIN index (an expression index serves
    only the very same expression; the planner is told to avoid a scan to show it)."""
    engine = make_engine(pg_store)
    sent: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "to_tsvector" in statement:
            sent.append((statement, parameters))

    try:
        upgrade(engine)
        sa.event.listen(engine, "before_cursor_execute", record)
        ReviewQueue(engine).page(ReviewFilters(search="лифт"))
        sa.event.remove(engine, "before_cursor_execute", record)
        [(statement, parameters)] = sent
        with engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
    finally:
        engine.dispose()
    assert "ix_predictions_text_search" in plan, plan


def test_the_migration_fills_deadlines_and_review_codes_of_stored_predictions(store_url):
    engine = make_engine(store_url)
    try:
        upgrade(engine, "0006_review_by_field")
        table = sa.table(
            "predictions",
            *(sa.column(c) for c in ("prediction_id", "created_at", "model_version")),
            *(sa.column(c) for c in ("category", "reason", "urgency", "agency", "needs_review")),
            sa.column("appeal", sa.JSON),
            sa.column("prediction", sa.JSON),
        )
        base = {
            "created_at": NOW, "model_version": "v1", "category": "ЖКХ", "reason": "Лифт",
            "urgency": "high", "agency": "ЖА", "needs_review": True, "appeal": {"text": "лифт"},
        }  # fmt: skip
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {**base, "prediction_id": "p-aware", "prediction": {
                        "due_at": "2024-05-17T09:30:00+03:00",
                        "review_reasons": ["low_confidence:reason", "place_unknown"]}},
                    {**base, "prediction_id": "p-naive", "prediction": {
                        "due_at": "2024-05-17T09:30:00", "review_reasons": []}},
                    {**base, "prediction_id": "p-none", "prediction": {"due_at": "когда-нибудь"}},
                ],
            )  # fmt: skip
        upgrade(engine)
        with engine.connect() as conn:
            got = dict(
                (pid, (due, codes))
                for pid, due, codes in conn.execute(
                    sa.text("SELECT prediction_id, due_at, review_codes FROM predictions")
                )
            )
    finally:
        engine.dispose()

    def utc(value) -> datetime | None:
        if value is None:
            return None
        when = datetime.fromisoformat(str(value))
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    expected = datetime(2024, 5, 17, 6, 30, tzinfo=UTC)  # 09:30 МСК, written or implied
    assert utc(got["p-aware"][0]) == expected
    assert got["p-aware"][1] == "|low_confidence:reason|place_unknown|"
    assert (utc(got["p-naive"][0]), got["p-naive"][1]) == (expected, None)
    assert got["p-none"] == (None, None)
