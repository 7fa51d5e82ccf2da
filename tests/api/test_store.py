"""Every prediction is recorded (inputs, outputs, model version, time) and survives shutdown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from cur_ml.store import (
    PredictionRepository,
    PredictionWriter,
    make_engine,
    prediction_row,
    upgrade,
)


def test_every_prediction_is_recorded(app_factory, model_a_dir, dev_texts):
    with app_factory(model_a_dir) as client:
        sent, answered = [], []
        for size in (1, 7, 30):
            appeals = [
                {"id": f"r{len(sent) + i}", "text": t, "district": "Невский", "lat": 59.9}
                for i, t in enumerate(dev_texts[len(sent) : len(sent) + size])
            ]
            r = client.post(
                "/v1/predict", json={"appeals": appeals}, headers={"X-Request-ID": f"req-{size}"}
            )
            assert r.status_code == 200
            sent += appeals
            answered += r.json()["predictions"]
        app = client.app
        assert app.state.writer.flush(timeout=10)
        repo = PredictionRepository(app.state.writer.repository.engine)
        assert repo.count() == len(sent) == 38
        for appeal, pred in zip(sent, answered, strict=True):
            row = repo.get(pred["prediction_id"])
            assert row is not None
            assert row.appeal_id == appeal["id"]
            assert row.appeal == appeal  # the appeal as received (its model inputs and id)
            assert row.prediction == pred  # the answer as sent
            assert row.model_version == "test-a"
            assert (row.category, row.reason, row.urgency, row.agency) == tuple(
                pred[h] for h in ("category", "reason", "urgency", "agency")
            )
            assert row.needs_review == pred["needs_review"]
            assert row.request_id.startswith("req-")
            created = row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC)
            assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)


def test_a_clean_shutdown_writes_everything_queued(app_factory, model_a_dir, tmp_path):
    with app_factory(model_a_dir) as client:
        for i in range(40):
            client.post("/v1/predict", json={"appeals": [{"id": i, "text": f"Яма на дороге {i}"}]})
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    assert PredictionRepository(engine).count() == 40


def test_migrations_create_the_table_and_are_idempotent(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'db.sqlite3'}")
    upgrade(engine)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"predictions", "alembic_version"} <= tables
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from cur_ml.store.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == head


def _table_of(diff) -> str | None:
    """The table an Alembic autogenerate diff entry is about."""
    for item in diff if isinstance(diff, list) else [diff]:
        for part in item[1:] if isinstance(item, tuple) else ():
            name = getattr(part, "name", None) if not isinstance(part, str) else None
            table = getattr(part, "table", None)
            if table is not None:
                return table.name
            if name is not None and hasattr(part, "columns"):
                return name
            if isinstance(part, str):
                return part
    return None


def test_predictions_migration_matches_the_model(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from cur_ml.store import Base

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if _table_of(d) == "predictions"] == []


def _row(i: int, **extra) -> dict:
    pred = {
        "prediction_id": f"00000000-0000-4000-8000-{i:012d}",
        "model_version": "v",
        "id": i,
        "category": "Благоустройство",
        "reason": "Яма",
        "urgency": "high",
        "agency": "ЖА",
        "needs_review": i % 2 == 0,
        **extra,
    }
    return prediction_row({"text": f"текст {i}"}, pred)


@pytest.fixture
def repo(tmp_path) -> PredictionRepository:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine)
    return PredictionRepository(engine)


def test_writer_batches_and_flushes(repo):
    writer = PredictionWriter(repo, max_pending=50, batch_rows=20).start()
    for i in range(0, 200, 4):
        writer.submit([_row(j) for j in range(i, i + 4)])
    assert writer.flush(timeout=10)
    assert repo.count() == 200 and writer.written == 200
    writer.close()
    assert not writer.alive
    assert [r.needs_review for r in repo.recent(10, needs_review=True)] == [True] * 10


def test_writer_keeps_good_rows_when_one_is_bad(repo):
    writer = PredictionWriter(repo).start()
    rows = [_row(1), _row(2), _row(1)]  # duplicate primary key: that row alone fails
    writer.submit(rows)
    writer.close()
    assert repo.count() == 2 and writer.written == 2 and writer.failures >= 1


def test_submit_after_close_is_refused(repo):
    from cur_ml.store import StoreBusyError

    writer = PredictionWriter(repo).start()
    writer.close()
    with pytest.raises(StoreBusyError):
        writer.submit([_row(1)])


def test_record_returns_only_once_the_rows_are_committed(repo):
    import threading

    writer = PredictionWriter(repo).start()
    seen_after: list[int] = []

    def request(k: int) -> None:
        rows = [_row(k * 10 + j) for j in range(3)]
        writer.record(rows)
        # Acknowledged: every row is in the store now, before any flush.
        seen_after.append(sum(repo.get(r["prediction_id"]) is not None for r in rows))

    threads = [threading.Thread(target=request, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen_after == [3] * 20
    writer.close()


def test_record_refuses_to_acknowledge_a_row_it_could_not_write(repo):
    from cur_ml.store import StoreBusyError

    writer = PredictionWriter(repo).start()
    writer.record([_row(1)])
    with pytest.raises(StoreBusyError, match="could not record"):
        writer.record([_row(2), _row(1)])  # _row(1) again: its primary key is taken
    writer.record([_row(3)])  # later requests are unaffected
    writer.close()
    assert repo.count() == 3
