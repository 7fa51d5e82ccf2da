"""The queue page: what waits, in which order, under which filters, page by page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from cur_ml.console import routes_queue

_ROW = re.compile(r'<a class="row-link clamp" href="/console/appeals/([0-9a-f-]{36})[^"]*">')


def _ids(html: str) -> list[str]:
    return _ROW.findall(html)


def _counts(html: str) -> tuple[int, int]:
    pending = re.search(r'id="count-pending">(\d+)<', html)
    reviewed = re.search(r'id="count-reviewed">(\d+)<', html)
    return int(pending.group(1)), int(reviewed.group(1))


@pytest.fixture
def queue(console, sign_in):
    sign_in(console)
    return console


def test_the_queue_lists_what_needs_review_most_urgent_first(queue):
    store = queue.app.state.review_queue
    html = queue.get("/console/").text
    expected = [r.prediction_id for r in store.page(limit=100)]
    assert expected, "the demo appeals should need review"
    assert _ids(html) == expected
    assert _counts(html) == (len(expected), 0)
    urgencies = re.findall(r'class="urgency u-(\w+)"', html)
    rank = {"high": 0, "medium": 1, "low": 2}
    assert [rank[u] for u in urgencies] == sorted(rank[u] for u in urgencies)


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"district": "Невский"}, lambda r: r.district == "Невский"),
        ({"source": "vk"}, lambda r: r.source == "vk"),
        (
            {"district": "Невский", "source": "vk"},
            lambda r: (r.district, r.source) == ("Невский", "vk"),
        ),
        ({"district": "Нигде"}, lambda r: False),
    ],
)
def test_filters_narrow_the_queue(queue, params, keep):
    every = queue.app.state.review_queue.page(limit=100)
    html = queue.get("/console/", params=params).text
    expected = [r.prediction_id for r in every if keep(r)]
    assert _ids(html) == expected
    assert _counts(html)[0] == len(expected)
    if not expected:
        assert "Нет обращений, ждущих проверки с этими фильтрами." in html


def test_category_and_agency_filters_offer_the_values_present(queue):
    every = queue.app.state.review_queue.page(limit=100)
    html = queue.get("/console/").text
    for record in every:
        assert f"<option>{record.category}</option>" in html.replace("&#34;", '"')
    category = every[0].category
    html = queue.get("/console/", params={"category": category}).text
    assert _ids(html) == [r.prediction_id for r in every if r.category == category]
    assert f"<option selected>{category}</option>" in html


def test_date_filters_take_moscow_days(queue):
    today = datetime.now().strftime("%d.%m.%Y")
    tomorrow = (datetime.now() + timedelta(days=2)).strftime("%d.%m.%Y")
    assert _ids(queue.get("/console/", params={"since": tomorrow}).text) == []
    assert len(_ids(queue.get("/console/", params={"until": tomorrow}).text)) > 0
    yesterday = (datetime.now() - timedelta(days=2)).strftime("%Y-%m-%d")
    assert _ids(queue.get("/console/", params={"until": yesterday}).text) == []
    html = queue.get("/console/", params={"since": "31.02.2024", "district": ""}).text
    assert "не распознана" in html
    assert len(_ids(html)) > 0  # the bad filter is dropped, not applied
    assert today  # (a day in the local calendar)


def test_pages(queue, monkeypatch):
    monkeypatch.setattr(routes_queue, "PAGE_SIZE", 2)
    every = [r.prediction_id for r in queue.app.state.review_queue.page(limit=100)]
    first = queue.get("/console/").text
    assert _ids(first) == every[:2]
    assert 'id="next-page"' in first and 'id="prev-page"' not in first
    second = queue.get("/console/?page=2").text
    assert _ids(second) == every[2:4]
    assert "Страница 2 из" in second
    assert "?pos=2" in second  # a card knows where it is in the queue
    beyond = queue.get("/console/?page=999").text
    assert _ids(beyond) == every[(len(every) - 1) // 2 * 2 :]


def test_next_walks_the_queue_and_wraps(queue):
    every = [r.prediction_id for r in queue.app.state.review_queue.page(limit=100)]
    r = queue.get("/console/next", params={"current": every[0], "pos": 0, "source": ""})
    assert r.status_code == 303
    assert r.headers["location"] == f"/console/appeals/{every[1]}?pos=1"
    r = queue.get("/console/next", params={"current": every[-1], "pos": len(every) - 1})
    assert r.headers["location"] == f"/console/appeals/{every[0]}"  # from the top again
    r = queue.get("/console/next", params={"current": "x", "district": "Нигде"})
    assert r.headers["location"] == "/console/?district=%D0%9D%D0%B8%D0%B3%D0%B4%D0%B5&msg=empty"
    assert "Других обращений в очереди нет" in queue.get(r.headers["location"]).text
