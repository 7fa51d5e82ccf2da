"""The queue around deadlines (on SQLite and PostgreSQL): «Ответить до» with the time left,
overdue appeals first and flagged, filters by urgency, category, reason, agency, district and
why-flagged, and a text search; and the small faults: fuzzy label search, retrain runs in
Russian with corrections counted, the model page refreshing itself, `/favicon.ico`."""

from __future__ import annotations

import re
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import pytest
from app_support import PG_URL, fresh_schema, reachable
from fastapi.testclient import TestClient

from cur_ml.api.main import create_app
from cur_ml.console.context import QueueContext
from cur_ml.console.deadlines import deadline, time_left
from cur_ml.console.label_search import find_labels
from cur_ml.settings import Settings
from cur_ml.store import prediction_row

NOW = datetime.now(UTC).replace(microsecond=0)
#: Half an hour of slack: what the page says stays true however slow the test runs.
SLACK = timedelta(minutes=30)
_ROW = re.compile(r'<a class="row-link clamp" href="/console/appeals/([0-9a-f-]{36})[^"]*">')

#: key: (urgency, lowest confidence, due from now (None: no deadline), category, reason,
#: agency, district, review reasons, text)
ROWS = {
    "late-low": ("low", 0.90, timedelta(hours=-5) + SLACK, "ЖКХ", "Лифт", "ЖА", "Невский",
                 ["small_margin:agency"], "Не работает лифт в подъезде"),
    "late-high": ("high", 0.50, timedelta(hours=-30) + SLACK, "ЖКХ", "Лифт", "ГКУ", "Кировский",
                  ["low_confidence:reason"], "Лифты стоят вторую неделю"),
    "high-unsure": ("high", 0.10, timedelta(hours=48) + SLACK, "Благоустройство", "Яма", "ЖА",
                    "Невский", ["low_confidence:category", "place_unknown"], "Яма во дворе"),
    "high-sure": ("high", 0.80, timedelta(hours=24) + SLACK, "Благоустройство", "Яма", "ГКУ",
                  "Кировский", ["low_confidence:agency"], "Во дворе огромные ямы"),
    "medium": ("medium", 0.20, timedelta(hours=2) + SLACK, "ЖКХ", "Мусор", "ЖА", "Невский",
               ["text_too_short"], "Мусор не вывозят"),
    "no-deadline": ("low", 0.30, None, "ЖКХ", "Крыша", "ЖА", None,
                    ["small_margin:reason"], "Течёт крыша"),
}  # fmt: skip
ORDER = ["late-high", "late-low", "high-unsure", "high-sure", "medium", "no-deadline"]


def _pid(key: str) -> str:
    return f"00000000-0000-4000-8000-{list(ROWS).index(key):012d}"


KEY_OF = {_pid(k): k for k in ROWS}


def _rows() -> list[dict]:
    rows = []
    for key, (urgency, low, due, category, reason, agency, district, why, text) in ROWS.items():
        pred = {
            "prediction_id": _pid(key),
            "id": key,
            "model_version": "test",
            "category": category,
            "reason": reason,
            "urgency": urgency,
            "agency": agency,
            "confidence": {"category": 0.95, "reason": low, "urgency": 0.97, "agency": 0.99},
            "needs_review": True,
            "review_reasons": why,
            "due_at": None if due is None else (NOW + due).isoformat(),
        }
        appeal = {"id": key, "text": text, **({"district": district} if district else {})}
        rows.append(prediction_row(appeal, pred, at=NOW - timedelta(hours=len(rows))))
    return rows


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def queue(request, tmp_path_factory, strict_model_dir, sign_in, tokens):
    """A signed-in console on each store, holding the rows above (these tests only read)."""
    tmp = tmp_path_factory.mktemp("queue-deadlines")
    if request.param == "sqlite":
        store = nullcontext(f"sqlite:///{tmp / 'store.sqlite3'}")
    else:
        why = reachable(PG_URL)
        if why is not None:
            pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({why})")
        store = fresh_schema(PG_URL)
    with store as url:
        settings = Settings(
            _env_file=None,
            model_dir=strict_model_dir,
            database_url=url,
            predict_token=None,
            operator_token=tokens["operator"],
            admin_token=tokens["admin"],
            model_poll_seconds=0,
            mlflow_enabled=False,
        )
        app = create_app(settings)
        with TestClient(app, follow_redirects=False) as client:
            deadline_at = time.monotonic() + 30
            while not app.state.slot.ready:  # the model loads in the background
                assert app.state.slot.error is None and time.monotonic() < deadline_at
                time.sleep(0.01)
            client.app.state.predictions.add_many(_rows())
            sign_in(client)
            yield client


def _keys(client, **params) -> list[str]:
    r = client.get("/console/", params=params)
    assert r.status_code == 200, r.text
    return [KEY_OF[pid] for pid in _ROW.findall(r.text)]


def _row_html(html: str, key: str) -> str:
    found = re.search(rf'<tr[^>]*data-id="{_pid(key)}".*?</tr>', html, re.S)
    assert found, f"no row of {key}"
    return found.group(0)


def test_overdue_appeals_come_first_and_are_flagged(queue):
    html = queue.get("/console/").text
    assert [KEY_OF[p] for p in _ROW.findall(html)] == ORDER
    assert "Ответить до" in html
    assert re.search(r'id="count-overdue" class="late">2<', html)
    late = _row_html(html, "late-high")
    assert 'class="overdue"' in late
    assert "просрочено на 1 дн 5 ч" in late  # 29.5 h late, whatever the test's own pace
    due = (NOW + ROWS["late-high"][2]).astimezone(UTC)
    assert f'datetime="{due.isoformat(timespec="seconds")}"' in late  # console.js counts on
    soon = _row_html(html, "high-unsure")
    assert 'class="overdue"' not in soon and "осталось 2 дн" in soon
    assert "осталось 2 ч" in _row_html(html, "medium")
    assert "срок не указан" in _row_html(html, "no-deadline")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"urgency": "high"}, ["late-high", "high-unsure", "high-sure"]),
        ({"urgency": "срочно"}, ORDER),  # not an urgency: dropped, not an error page
        ({"category": "Благоустройство"}, ["high-unsure", "high-sure"]),
        ({"reason": "Лифт"}, ["late-high", "late-low"]),
        ({"agency": "ГКУ"}, ["late-high", "high-sure"]),
        ({"district": "Кировский"}, ["late-high", "high-sure"]),
        ({"review": "low_confidence"}, ["late-high", "high-unsure", "high-sure"]),
        ({"review": "small_margin"}, ["late-low", "no-deadline"]),
        ({"review": "place_unknown"}, ["high-unsure"]),
        ({"q": "лифт"}, ["late-high", "late-low"]),
        ({"q": "ДВОРЕ"}, ["high-unsure", "high-sure"]),
        ({"q": "двор", "agency": "ГКУ"}, ["high-sure"]),
        ({"q": "лифт", "urgency": "low"}, ["late-low"]),
    ],
)
def test_filters_and_search_narrow_the_queue(queue, params, expected):
    assert _keys(queue, **params) == expected


def test_filters_offer_the_values_present_in_russian(queue):
    html = queue.get("/console/", params={"urgency": "high", "review": "place_unknown"}).text
    assert '<option value="high" selected>высокая</option>' in html
    assert '<option value="place_unknown" selected>место не найдено</option>' in html
    assert '<option value="low_confidence">низкая уверенность</option>' in html
    for reason in ("Лифт", "Яма", "Мусор", "Крыша"):
        assert f"<option>{reason}</option>" in html
    # The search box keeps what was typed, escaped.
    html = queue.get("/console/", params={"q": '<b>"лифт"'}).text
    assert 'value="&lt;b&gt;&#34;лифт&#34;"' in html
    # The card of a filtered queue walks the filtered queue ("next").
    first = _ROW.search(queue.get("/console/", params={"q": "лифт"}).text).group(0)
    assert "q=%D0%BB%D0%B8%D1%84%D1%82" in first


def test_next_keeps_to_the_search(queue):
    r = queue.get(
        "/console/next",
        params={"current": _pid("late-high"), "q": "лифт"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"/console/appeals/{_pid('late-low')}?")


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=2, hours=3, minutes=5), "осталось 2 дн 3 ч"),
        (timedelta(days=3), "осталось 3 дн"),
        (timedelta(hours=5, minutes=7), "осталось 5 ч 7 мин"),
        (timedelta(minutes=42, seconds=59), "осталось 42 мин"),
        (timedelta(minutes=-1), "просрочено на 1 мин"),
        (timedelta(days=-400, hours=-2), "просрочено на 400 дн 2 ч"),
    ],
)
def test_time_left(delta, text):
    assert time_left(delta) == text


def test_deadline_of_a_stored_time():
    now = datetime(2024, 5, 17, 6, 0, tzinfo=UTC)
    due = deadline(datetime(2024, 5, 17, 6, 30), now)  # SQLite gives back naive UTC
    assert (due.text, due.left, due.overdue) == ("17.05.2024 09:30", "осталось 30 мин", False)
    assert due.iso == "2024-05-17T06:30:00+00:00"
    assert deadline(None, now) is None
    assert deadline(datetime(2024, 5, 16, tzinfo=UTC), now).overdue


def test_queue_context_carries_the_new_filters():
    ctx = QueueContext.from_params(
        {"urgency": "high", "reason": "Лифт", "review": "place_unknown", "q": " лифт ", "pos": "2"}
    )
    assert QueueContext.from_string(ctx.query()) == ctx
    filters = ctx.filters()
    assert (filters.urgency, filters.reason, filters.review_reason, filters.search) == (
        "high",
        "Лифт",
        "place_unknown",
        "лифт",
    )
    assert ctx.active and not QueueContext.from_params({"urgency": "срочно"}).active


# ----------------------------------------------------------------- fuzzy label search
LABELS = [
    "Повреждения дорожного покрытия  проезжей части",
    "Мусор  на проезжей части, тротуаре,  благоустроенных спусках к воде",
    "Неисправность лифта",
    "Застревание в лифте",
    "Яма во дворе",
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Double spaces in a label, single in what was typed (or the other way round).
        ("Повреждения дорожного покрытия проезжей части", [LABELS[0]]),
        ("мусор  на   проезжей части, тротуаре, благоустроенных спусках к воде", [LABELS[1]]),
        # A partial word, a word in another form, any case.
        ("неиспр", [LABELS[2]]),
        ("ЯМА", [LABELS[4]]),
        ("неисправный лифт", []),  # «неисправный» is no form of «неисправность»
        ("лифты", [LABELS[3], LABELS[2]]),  # lemma «лифт» begins «лифте», «лифта»
        ("застрял лифт", []),
        ("застревание лифтов", [LABELS[3]]),
        ("покрыт проезж", [LABELS[0]]),
        ("проезжей", [LABELS[0], LABELS[1]]),
        ("самокат", []),
        ("   ", []),
    ],
)
def test_find_labels(query, expected):
    assert find_labels(query, LABELS) == expected


def _card_form(html: str, field: str) -> dict[str, str]:
    import html as htmlmod

    for body in re.findall(r'<form method="post"[^>]*corrections"[^>]*>(.*?)</form>', html, re.S):
        values = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', body))
        if values.get("field") == field and 'name="custom"' in body:
            return {k: htmlmod.unescape(v) for k, v in values.items()}
    raise AssertionError(f"no search form for {field}")


def test_a_label_typed_in_part_or_with_other_spacing_is_found(console, sign_in):
    sign_in(console)
    reasons = console.app.state.slot.model.label_sets()["reason"]
    spaced = next(r for r in reasons if "  " in r)
    first = console.app.state.review_queue.page(limit=1)[0]
    url = f"/console/appeals/{first.prediction_id}"

    def send(field: str, typed: str):
        form = _card_form(console.get(url).text, field)
        return console.post(f"{url}/corrections", data={**form, "custom": typed})

    r = send("reason", " ".join(spaced.split()))  # as the eye reads it: single spaces
    assert r.status_code == 303, r.text
    stored = console.app.state.corrections.query(prediction_id=first.prediction_id)
    assert (stored[0].field, stored[0].new_value) == ("reason", spaced)
    r = send("urgency", "низк")  # a part of the Russian title
    assert r.status_code == 303, r.text
    stored = console.app.state.corrections.query(prediction_id=first.prediction_id)
    assert ("urgency", "low") in [(c.field, c.new_value) for c in stored]
    r = send("agency", "района")  # names many agencies: which one is asked
    assert r.status_code == 422
    assert "подходит к" in r.text and "уточните или выберите из списка" in r.text


# ----------------------------------------------------------------- model page, favicon
def test_favicon(console):
    r = console.get("/favicon.ico")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/x-icon"
    assert r.content[:4] == b"\x00\x00\x01\x00"  # an ICO file


def test_the_model_page_watches_a_retrain_until_it_ends(console, sign_in, tokens):
    sign_in(console, tokens["admin"], "Админ")
    jobs = console.app.state.retrain_jobs
    idle = console.get("/console/model").text
    assert "data-poll" not in idle
    assert console.get("/console/model/state").json()["waiting"] is False
    run = jobs.start("console")
    watching = console.get("/console/model").text
    assert 'data-poll="/console/model/state"' in watching
    state = re.search(r'data-state="([^"]+)"', watching).group(1)
    assert console.get("/console/model/state").json() == {"state": state, "waiting": True}
    jobs.runs.finish(run.id, "failed", error="no base data named: set CUR_ML_BASE_DATA")
    now = console.get("/console/model/state").json()
    assert now["waiting"] is False and now["state"] != state  # the page reloads, then stops
    done = console.get("/console/model").text
    assert "data-poll" not in done
    assert "не названы базовые данные" in done  # Russian first, the record beside it
    assert "no base data named" in done
    assert "<td>консоль</td>" in done


def test_retrain_runs_count_corrections_not_appeals(console, sign_in, tokens):
    sign_in(console, tokens["admin"], "Админ")
    runs = console.app.state.retrain_jobs.runs
    run = console.app.state.retrain_jobs.start("auto")
    result = {
        "challenger_version": "v-next",
        "reasons": ["rejected: reason accuracy worse than the champion"],
        "reasons_ru": ["отклонён: хуже чемпиона — причина (точность)"],
        "training_rows": 900,
        "corrections_matched": 12,
        "corrections_applied": 5,
    }
    runs.finish(run.id, "rejected", result=result)
    html = console.get("/console/model").text
    assert "исправлений учтено: 12" in html and "строк изменено: 5" in html
    assert "отклонён: хуже чемпиона" in html and "rejected:" not in html
    assert "<td>автоматически</td>" in html
