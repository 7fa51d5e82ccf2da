"""Migration 0006 (review_progress): a populated store of the schema before it upgrades in
place; appeals a correction had closed stay closed, the rest stay in the queue."""

from __future__ import annotations

import sqlalchemy as sa
from migration_support import downgrade, insert_corrections, insert_predictions, pid
from sqlalchemy import inspect

from cur_ml.store import make_engine, upgrade
from cur_ml.store.corrections import CorrectionIn, CorrectionRepository
from cur_ml.store.review import ReviewQueue

BEFORE = "0005_operators"


def _populate(engine: sa.Engine) -> None:
    """Three flagged appeals as the service of schema 0005 wrote them; the first two got a
    correction of the reason only (which closed them then)."""
    insert_predictions(engine, 3, {"review_reasons": ["low_confidence:reason", "place_unknown"]})
    insert_corrections(engine, 2)


def test_closed_appeals_stay_closed_and_open_ones_stay_in_the_queue(store_url):
    engine = make_engine(store_url)
    try:
        upgrade(engine, BEFORE)
        _populate(engine)
        upgrade(engine)  # what `cur-ml serve` does at start
        queue = ReviewQueue(engine)
        assert [r.prediction_id for r in queue.page()] == [pid(2)]
        assert queue.counts()["reviewed"] == 2
        corrections = CorrectionRepository(engine)
        assert len(corrections.events()) == 2  # kept

        # The next correction of a carried-over appeal judges it by field: its agency (no
        # place found) was never looked at.
        corrections.add(
            [
                CorrectionIn(
                    field="reason", new_value="Яма", operator="Сидоров", prediction_id=pid(0)
                )
            ]
        )
        assert {r.prediction_id for r in queue.page()} == {pid(0), pid(2)}

        downgrade(engine, BEFORE)
        assert "review_progress" not in set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from corrections")).scalar_one() == 3
    finally:
        engine.dispose()
