"""Migration 0006 (review_progress): a populated store of the schema before it upgrades in
place; appeals a correction had closed stay closed, the rest stay in the queue."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from cur_ml.store import make_engine, upgrade
from cur_ml.store.corrections import CorrectionIn, CorrectionRepository
from cur_ml.store.db import MIGRATIONS_DIR
from cur_ml.store.review import ReviewQueue

_PREDICTIONS = sa.table(
    "predictions",
    *(sa.column(c) for c in ("prediction_id", "created_at", "model_version", "appeal_id")),
    *(sa.column(c) for c in ("category", "reason", "urgency", "agency", "needs_review")),
    *(sa.column(c) for c in ("district", "source", "min_confidence")),
    sa.column("appeal", sa.JSON),
    sa.column("prediction", sa.JSON),
)
_CORRECTIONS = sa.table(
    "corrections",
    *(sa.column(c) for c in ("idempotency_key", "prediction_id", "appeal_id", "field")),
    *(sa.column(c) for c in ("old_value", "new_value", "operator", "comment", "source")),
    sa.column("created_at"),
)
BEFORE = "0005_operators"


def _pid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def _populate(engine: sa.Engine) -> None:
    """Three flagged appeals as the service of schema 0005 wrote them; the first two got a
    correction of the reason only (which closed them then)."""
    at = sa.func.now() if engine.dialect.name == "postgresql" else "2026-11-30 10:00:00"
    flagged = {"review_reasons": ["low_confidence:reason", "place_unknown"]}
    with engine.begin() as conn:
        conn.execute(
            _PREDICTIONS.insert().values(created_at=at),
            [
                {
                    "prediction_id": _pid(i),
                    "model_version": "v1",
                    "appeal_id": str(i),
                    "category": "Благоустройство",
                    "reason": "Яма",
                    "urgency": "medium",
                    "agency": "ЖА",
                    "needs_review": True,
                    "district": "Невский",
                    "source": "portal",
                    "min_confidence": 0.4,
                    "appeal": {"text": f"яма во дворе {i}"},
                    "prediction": flagged,
                }
                for i in range(3)
            ],
        )
        conn.execute(
            _CORRECTIONS.insert().values(created_at=at),
            [
                {
                    "idempotency_key": f"k{i}",
                    "prediction_id": _pid(i),
                    "appeal_id": str(i),
                    "field": "reason",
                    "old_value": "Яма",
                    "new_value": "Мусор",
                    "operator": "Петрова",
                    "comment": None,
                    "source": "api",
                }
                for i in range(2)
            ],
        )


def _downgrade(engine: sa.Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("pg_store")


def test_closed_appeals_stay_closed_and_open_ones_stay_in_the_queue(url):
    engine = make_engine(url)
    try:
        upgrade(engine, BEFORE)
        _populate(engine)
        upgrade(engine)  # what `cur-ml serve` does at start
        queue = ReviewQueue(engine)
        assert [r.prediction_id for r in queue.page()] == [_pid(2)]
        assert queue.counts()["reviewed"] == 2
        corrections = CorrectionRepository(engine)
        assert len(corrections.events()) == 2  # kept

        # The next correction of a carried-over appeal judges it by field: its agency (no
        # place found) was never looked at.
        corrections.add(
            [
                CorrectionIn(
                    field="reason", new_value="Яма", operator="Сидоров", prediction_id=_pid(0)
                )
            ]
        )
        assert {r.prediction_id for r in queue.page()} == {_pid(0), _pid(2)}

        _downgrade(engine, BEFORE)
        assert "review_progress" not in set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from corrections")).scalar_one() == 3
    finally:
        engine.dispose()
