"""The console's pure parts: highlighting, the queue context (sessions: test_console_sessions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cur_ml.console.context import QueueContext
from cur_ml.console.highlight import highlight, span_groups

TITLES = {"reason": "Причина", "agency": "Ведомство", "category": "Категория"}


def _spans(*pairs):
    return [{"start": s, "end": e, "text": "", "weight": 1.0} for s, e in pairs]


@pytest.mark.parametrize(
    ("text", "explanation", "expected"),
    [
        ("Яма во дворе", {}, "Яма во дворе"),
        (
            "Яма во дворе",
            {"reason": _spans((0, 3))},
            '<mark class="hl hl-1" title="Причина">Яма</mark> во дворе',
        ),
        (
            "<b>Яма</b> & двор",
            {"reason": _spans((3, 6))},
            '&lt;b&gt;<mark class="hl hl-1" title="Причина">Яма</mark>&lt;/b&gt; &amp; двор',
        ),
        (  # overlapping words of two heads: the shared part carries both classes
            "мусор у дома",
            {"reason": _spans((0, 5)), "agency": _spans((0, 7))},
            '<mark class="hl hl-1 hl-2" title="Причина; Ведомство">мусор</mark>'
            '<mark class="hl hl-2" title="Ведомство"> у</mark> дома',
        ),
        (  # out of range, reversed, not numbers: dropped
            "текст",
            {"reason": [*_spans((3, 99), (4, 2)), {"start": "0", "end": 2}, "junk"]},
            "текст",
        ),
    ],
)
def test_highlight_escapes_around_the_spans(text, explanation, expected):
    groups = span_groups(explanation, text, ("reason", "agency"))
    assert str(highlight(text, groups, TITLES)) == expected


def test_heads_with_the_same_words_share_one_group():
    words = _spans((0, 3))
    groups = span_groups(
        {"category": words, "reason": words, "agency": _spans((4, 6))},
        "Яма во дворе",
        ("category", "reason", "agency"),
    )
    assert [(g.css, g.heads) for g in groups] == [
        ("hl-1", ("category", "reason")),
        ("hl-2", ("agency",)),
    ]


def test_a_script_in_the_text_is_only_text():
    text = '<script>alert("x")</script> яма'
    html = str(highlight(text, span_groups({"reason": _spans((28, 31))}, text, ["reason"]), {}))
    assert "<script>" not in html
    assert html.startswith("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; <mark")


def test_queue_context_round_trip_and_days_in_moscow_time():
    ctx = QueueContext.from_params(
        {"district": "Невский", "since": "01.03.2024", "until": "2024-03-02", "pos": "4", "x": "1"}
    )
    assert ctx.since == "2024-03-01" and ctx.since_text == "01.03.2024"
    assert QueueContext.from_string(ctx.query()) == ctx
    filters = ctx.filters()
    assert filters.district == "Невский" and filters.agency is None
    assert filters.since == datetime(2024, 2, 29, 21, tzinfo=UTC)  # 00:00 МСК
    assert filters.until == datetime(2024, 3, 2, 21, tzinfo=UTC)  # the whole last day


def test_queue_context_drops_what_it_cannot_read():
    ctx = QueueContext.from_params({"since": "вчера", "page": "-3", "pos": "x"})
    assert (ctx.since, ctx.page, ctx.pos) == ("", 1, 0)
    assert ctx.errors and "вчера" in ctx.errors[0]
    assert ctx.query() == ""
