"""The store schema: migrations agree with the models (SQLite, PostgreSQL); new columns filled."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from cur_ml.store import Base, PredictionRepository, make_engine, prediction_row, upgrade
from cur_ml.store.db import MIGRATIONS_DIR


def _diffs(url: str) -> list:
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            return compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
    finally:
        engine.dispose()


def test_migrations_match_the_models_on_sqlite(tmp_path):
    assert _diffs(f"sqlite:///{tmp_path / 'db.sqlite3'}") == []


def test_migrations_match_the_models_on_postgresql(pg_store):
    assert _diffs(pg_store) == []
    engine = make_engine(pg_store)
    columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
    indexes = {i["name"] for i in inspect(engine).get_indexes("predictions")}
    engine.dispose()
    assert {"district", "source", "min_confidence"} <= columns
    assert {"ix_predictions_district", "ix_predictions_source"} <= indexes
    assert "ix_predictions_min_confidence" in indexes


def _pred(i: int, **extra) -> dict:
    return {
        "prediction_id": f"00000000-0000-4000-8000-{i:012d}",
        "model_version": "v",
        "id": i,
        "category": "Благоустройство",
        "reason": "Яма",
        "urgency": "high",
        "agency": "ЖА",
        "needs_review": True,
        "confidence": {"category": 0.9, "reason": 0.4, "urgency": 0.8, "agency": 0.7},
        **extra,
    }


def test_prediction_row_fills_the_review_columns():
    row = prediction_row({"text": "т", "district": " Невский ", "source": "vk"}, _pred(1))
    assert (row["district"], row["source"], row["min_confidence"]) == ("Невский", "vk", 0.4)
    long = prediction_row({"text": "т", "district": "д" * 900, "source": "s\x00" * 50}, _pred(2))
    assert len(long["district"]) == 256 and len(long["source"]) == 50  # clipped, NUL dropped
    bare = prediction_row({"text": "т"}, _pred(3, confidence={}))
    assert (bare["district"], bare["source"], bare["min_confidence"]) == (None, None, None)


def _alembic(engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def test_upgrading_a_0001_store_backfills_the_new_columns_and_downgrades(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(engine, "0001_predictions")
    with engine.begin() as conn:  # rows recorded before the columns existed
        conn.execute(
            text(
                "insert into predictions values (:pid, '2024-01-01 00:00:00', 'v', null, '1',"
                " 'К', 'П', 'low', 'В', 1, :appeal, :prediction)"
            ),
            [
                {
                    "pid": "p1",
                    "appeal": '{"text": "т", "district": "Невский", "source": "portal"}',
                    "prediction": '{"confidence": {"category": 0.5, "reason": 0.25,'
                    ' "urgency": 0.9, "agency": 0.6}}',
                },
                {"pid": "p2", "appeal": '{"text": "т"}', "prediction": "{}"},
            ],
        )
    upgrade(engine)
    repo = PredictionRepository(engine)
    p1, p2 = repo.get("p1"), repo.get("p2")
    assert (p1.district, p1.source, p1.min_confidence) == ("Невский", "portal", 0.25)
    assert (p2.district, p2.source, p2.min_confidence) == (None, None, None)
    with engine.begin() as conn:
        config = _alembic(engine)
        config.attributes["connection"] = conn
        command.downgrade(config, "0001_predictions")
    columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
    assert "district" not in columns and "corrections" not in inspect(engine).get_table_names()
    assert repo.count() == 2
    engine.dispose()


@pytest.mark.parametrize(
    ("name", "old_home"),
    [
        ("StoreBusyError", "cur_ml.store.writer"),
        ("StoreBusyError", "cur_ml.store"),
        ("ModelNotReadyError", "cur_ml.api.model_slot"),
        ("UnprocessableAppealsError", "cur_ml.api.service"),
    ],
)
def test_domain_errors_live_in_one_module_and_are_still_importable(name, old_home):
    import importlib

    import cur_ml.errors

    assert getattr(importlib.import_module(old_home), name) is getattr(cur_ml.errors, name)
    assert name in cur_ml.errors.__all__
