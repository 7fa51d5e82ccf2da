"""Review by field, versions of an appeal's labels, undo and claims, in the store (SQLite and
PostgreSQL): an appeal leaves the queue only when every field that needed review is settled,
a save over a newer version is refused with what changed, an undo restores the labels with
new rows, and two operators never hold one appeal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cur_ml.errors import StaleVersionError, UndoRefusedError
from cur_ml.retrain.importer import import_corrections
from cur_ml.store import PredictionRepository, make_engine, prediction_row, upgrade
from cur_ml.store.claiming import Claims
from cur_ml.store.corrections import CorrectionIn, CorrectionRepository
from cur_ml.store.export import export_history
from cur_ml.store.operator_stats import daily_counts
from cur_ml.store.review import ReviewQueue
from cur_ml.store.review_progress import needed_fields
from cur_ml.store.undo import ReviewLog
from cur_ml.store.versions import version_of

TAXONOMY = {
    "Яма во дворе": {"category": "Благоустройство", "urgency": "medium"},
    "Мусор во дворе": {"category": "Благоустройство", "urgency": "low"},
    "Протечка кровли": {"category": "ЖКХ", "urgency": "high"},
}


def follow(reason: str) -> dict[str, str]:
    return TAXONOMY.get(reason, {})


def _pid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def _prediction(i: int, reasons: list[str]) -> dict:
    return {
        "prediction_id": _pid(i),
        "model_version": "v",
        "id": i,
        "category": "Благоустройство",
        "reason": "Яма во дворе",
        "urgency": "medium",
        "agency": "ЖА Невского района",
        "needs_review": bool(reasons),
        "review_reasons": reasons,
        "confidence": {"category": 0.5, "reason": 0.4, "urgency": 0.7, "agency": 0.5},
    }


@pytest.fixture
def engine(store_url):
    engine = make_engine(store_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine):
    reasons = ["low_confidence:reason", "low_confidence:category", "place_unknown"]
    PredictionRepository(engine).add_many(
        [
            prediction_row({"text": "яма", "district": "Невский"}, _prediction(i, reasons))
            for i in range(1, 4)
        ]
    )
    return CorrectionRepository(engine)


def _fix(field: str, value: str, who: str = "Петрова", pid: int = 1, **kw) -> CorrectionIn:
    return CorrectionIn(
        field=field, new_value=value, operator=who, prediction_id=_pid(pid), source="console", **kw
    )


def _pending(engine) -> list[str]:
    return [r.prediction_id for r in ReviewQueue(engine).page(limit=10)]


@pytest.mark.parametrize(
    ("flagged", "reasons", "needed"),
    [
        (True, ["low_confidence:reason", "small_margin:reason"], ("reason",)),
        (True, ["low_confidence:category", "low_confidence:agency"], ("category", "agency")),
        (True, ["place_unknown"], ("agency",)),
        (True, ["heads_disagree"], ("reason", "agency")),
        (True, ["text_too_short"], ("category", "reason", "urgency", "agency")),
        (True, ["something_new"], ("category", "reason", "urgency", "agency")),
        (True, [], ("category", "reason", "urgency", "agency")),
        (False, ["low_confidence:reason"], ()),
    ],
)
def test_fields_that_need_review(flagged, reasons, needed):
    assert needed_fields(flagged, reasons) == needed


def test_a_corrected_reason_alone_leaves_the_agency_in_the_queue(engine, store):
    stored = store.add([_fix("reason", "Протечка кровли")], follow=follow)
    # The taxonomy moved category and urgency with it.
    assert {d.field: d.new_value for d in stored.derived[0]} == {
        "category": "ЖКХ",
        "urgency": "high",
    }
    assert _pid(1) in _pending(engine)  # the agency (no place found) is still open
    store.add([_fix("agency", "ЖА Невского района")], follow=follow)  # accepted as predicted
    assert _pid(1) not in _pending(engine)
    assert ReviewQueue(engine).counts()["reviewed"] == 1


def test_a_reason_in_the_same_category_settles_the_category_too(engine, store):
    stored = store.add([_fix("reason", "Мусор во дворе")], follow=follow)
    assert [d.field for d in stored.derived[0]] == ["urgency"]  # the category did not move
    store.add([_fix("agency", "ЖА Невского района")], follow=follow)
    assert _pid(1) not in _pending(engine)


def test_a_save_over_a_newer_version_is_refused_with_what_changed(engine, store):
    assert version_of(engine, _pid(1)) == 0
    first = store.add([_fix("agency", "ЖА Кировского района", "Петрова", base_version=0)])
    version = first.items[0][0].id
    assert version_of(engine, _pid(1)) == version

    with pytest.raises(StaleVersionError) as caught:
        store.add([_fix("reason", "Протечка кровли", "Сидоров", base_version=0)], follow=follow)
    [change] = caught.value.changes
    assert (change.field, change.old_value, change.new_value, change.operator) == (
        "agency",
        "ЖА Невского района",
        "ЖА Кировского района",
        "Петрова",
    )
    assert caught.value.positions == [0]
    assert version_of(engine, _pid(1)) == version  # nothing stored

    # Based on the version now, it goes through; without a version, as before.
    store.add([_fix("reason", "Протечка кровли", "Сидоров", base_version=version)], follow=follow)
    store.add([_fix("urgency", "high", "Сидоров")])
    # A retry of a stored key is a repeat, not a conflict.
    retry = _fix("agency", "ЖА Кировского района", "Петрова", base_version=0)
    key = first.items[0][0].idempotency_key
    again = store.add([CorrectionIn(**{**retry.__dict__, "idempotency_key": key})])
    assert again.items[0][1] is False


def test_undo_restores_the_labels_with_new_rows_and_reopens_the_appeal(engine, store):
    log = ReviewLog(engine, timedelta(minutes=10))
    store.add([_fix("reason", "Протечка кровли", "Петрова")], follow=follow)
    store.add([_fix("agency", "ЖА Невского района", "Петрова")], follow=follow)
    assert _pid(1) not in _pending(engine)
    before = len(store.history(_pid(1)))

    [item] = log.mine("Петрова")
    assert item.done and len(item.undoable) == 4  # reason, its category and urgency, agency
    undo_rows = log.undo(_pid(1), "Петрова", follow=follow)

    assert [r.source for r in undo_rows] == ["undo"] * 4
    history = store.history(_pid(1))
    assert len(history) == before + 4  # appended, nothing deleted
    latest = {r.field: r.new_value for r in history}
    assert latest == {
        "category": "Благоустройство",
        "reason": "Яма во дворе",
        "urgency": "medium",
        "agency": "ЖА Невского района",
    }
    assert _pid(1) in _pending(engine)  # back in the queue
    assert store.events().empty  # retraining sees neither the rows nor their undo
    [item] = log.mine("Петрова")
    assert item.undone and not item.undoable and not item.done
    with pytest.raises(UndoRefusedError):
        log.undo(_pid(1), "Петрова", follow=follow)

    # A reason set after the undo moves category and urgency again (the undone category
    # correction no longer counts as the operator's own).
    stored = store.add([_fix("reason", "Протечка кровли", "Сидоров")], follow=follow)
    assert {d.field for d in stored.derived[0]} == {"category", "urgency"}


def test_undo_is_refused_after_someone_else_or_after_the_window(engine, store):
    log = ReviewLog(engine, timedelta(minutes=10))
    store.add([_fix("agency", "ЖА Кировского района", "Петрова")])
    store.add([_fix("agency", "ЖА Невского района", "Сидоров")])
    with pytest.raises(UndoRefusedError) as caught:
        log.undo(_pid(1), "Петрова")
    assert caught.value.changed_after

    store.add([_fix("agency", "ЖА Кировского района", "Петрова", pid=2)])
    later = datetime.now(UTC) + timedelta(minutes=11)
    with pytest.raises(UndoRefusedError) as caught:
        log.undo(_pid(2), "Петрова", now=later)
    assert not caught.value.changed_after
    assert log.mine("Петрова", now=later)[0].until is None


def test_undo_checks_the_version_it_was_based_on(engine, store):
    log = ReviewLog(engine, timedelta(minutes=10))
    [(row, _)] = store.add([_fix("agency", "ЖА Кировского района")]).items
    with pytest.raises(StaleVersionError):
        log.undo(_pid(1), "Петрова", base_version=row.id - 1)
    assert len(log.undo(_pid(1), "Петрова", base_version=row.id)) == 1


def test_one_appeal_one_holder(engine, store):
    claims = Claims(engine, minutes=15)
    now = datetime.now(UTC)
    assert claims.take(_pid(1), "Петрова", now=now).holder == "Петрова"
    held = claims.take(_pid(1), "Сидоров", now=now + timedelta(minutes=1))
    assert held.holder == "Петрова"  # not taken over
    assert claims.held_by_others([_pid(1), _pid(2)], "Сидоров", now=now) == {_pid(1)}
    assert claims.held_by_others([_pid(1)], "Петрова", now=now) == set()
    # Her own claim is renewed; after it expires, anyone may take it.
    renewed = claims.take(_pid(1), "Петрова", now=now + timedelta(minutes=5))
    assert renewed.expires_at == now + timedelta(minutes=20)
    later = now + timedelta(minutes=21)
    assert claims.take(_pid(1), "Сидоров", now=later).holder == "Сидоров"
    claims.release(_pid(1), "Петрова")  # not hers any more: nothing happens
    assert claims.held([_pid(1)], now=later)[_pid(1)].holder == "Сидоров"
    claims.release(_pid(1), "Сидоров")
    assert claims.held([_pid(1)], now=later) == {}


def test_corrections_are_counted_per_operator_and_moscow_day(engine, store):
    late = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)  # 02.12 01:30 in Moscow
    store.add([_fix("reason", "Протечка кровли", "Петрова", created_at=late)], follow=follow)
    store.add([_fix("agency", "ЖА Невского района", "Петрова", pid=2, created_at=late)])
    store.add([_fix("agency", "ЖА Кировского района", "Сидоров", pid=3, created_at=late)])
    early = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)  # 01.12 23:00 in Moscow
    store.add([_fix("urgency", "high", "Сидоров", pid=3, created_at=early)])
    days = daily_counts(engine, days=7, now=datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    # The derived category and urgency of her reason are not her work: one row, changed.
    assert [(d.day.isoformat(), d.operator, d.changed, d.accepted) for d in days] == [
        ("2026-12-02", "Петрова", 1, 1),
        ("2026-12-02", "Сидоров", 1, 0),
        ("2026-12-01", "Сидоров", 1, 0),
    ]
    assert daily_counts(engine, days=1, now=datetime(2026, 12, 2, 12, 0, tzinfo=UTC))[-1].day == (
        datetime(2026, 12, 2).date()
    )


def test_an_undo_stays_paired_with_what_it_took_back_across_export_and_import(
    engine, store, tmp_path
):
    log = ReviewLog(engine, timedelta(minutes=10))
    store.add([_fix("reason", "Протечка кровли", "Петрова")], follow=follow)
    log.undo(_pid(1), "Петрова", follow=follow)
    store.add([_fix("agency", "ЖА Кировского района", "Сидоров", pid=2)])
    out = tmp_path / "history.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        export_history(engine, fh, "jsonl")

    copy = make_engine(f"sqlite:///{tmp_path / 'copy.sqlite3'}")
    upgrade(copy)
    try:
        imported = CorrectionRepository(copy)
        import_corrections(out, None, imported, show_progress=False)
        # Ids differ in the new store; the keys still pair each undo with its row.
        assert imported.events()[["field", "new"]].values.tolist() == [
            ["agency", "ЖА Кировского района"]
        ]
    finally:
        copy.dispose()
