"""Migration 0008 (regions): a populated store of schema 0007 (predictions, corrections, an
account) upgrades in place; its rows, with no region, read as the deployment's default
region's, and none of them is another region's."""

from __future__ import annotations

import sqlalchemy as sa
from migration_support import downgrade, insert_corrections, insert_predictions, pid
from sqlalchemy import inspect

from cur_ml.auth import Authenticator
from cur_ml.settings import Settings
from cur_ml.store import make_engine, upgrade
from cur_ml.store.corrections import CorrectionRepository
from cur_ml.store.review import ReviewFilters, ReviewQueue
from cur_ml.store.users import UserRepository

BEFORE = "0007_queue_search"
_USERS = sa.table(
    "users",
    *(sa.column(c) for c in ("name", "role", "token_lookup", "token_hash", "created_at")),
)


def _populate(engine: sa.Engine, token_hash: str) -> None:
    """Three flagged appeals, two corrected, and an operator's account, as schema 0007 had
    them (the account's hash is a real one: its token still signs in after the upgrade)."""
    insert_predictions(engine, 3, {"review_reasons": ["low_confidence:agency"]})
    insert_corrections(engine, 2)
    with engine.begin() as conn:
        conn.execute(
            _USERS.insert().values(
                name="Петрова",
                role="operator",
                token_lookup="oldtoken",
                token_hash=token_hash,
                created_at=sa.func.now() if engine.dialect.name == "postgresql" else "2026-11-30",
            )
        )


def _queue_ids(queue: ReviewQueue, regions: tuple[str, ...]) -> list[str]:
    filters = ReviewFilters(regions=regions, default_region="spb")
    return sorted(r.prediction_id for r in queue.page(filters))


def test_a_0007_store_upgrades_and_its_rows_are_the_default_regions(store_url):
    from argon2 import PasswordHasher

    token = "oldtoken" + "x" * 35  # the account's token: its first 8 characters find it
    engine = make_engine(store_url)
    try:
        upgrade(engine, BEFORE)
        _populate(engine, PasswordHasher().hash(token))
        before = CorrectionRepository(engine).events()

        upgrade(engine)  # what `cur-ml serve` does at start

        assert "regions" in {c["name"] for c in inspect(engine).get_columns("users")}
        corrections = CorrectionRepository(engine)
        after = corrections.events()
        assert after.to_dict("records") == before.to_dict("records")  # kept as they were
        queue = ReviewQueue(engine)
        # NULL region = the default region (spb): seen there, not in krd.
        every = [pid(0), pid(1), pid(2)]  # an agency to check: a reason does not settle it
        assert _queue_ids(queue, ("spb",)) == every
        assert _queue_ids(queue, ("spb", "krd")) == every
        assert _queue_ids(queue, ("krd",)) == []
        spb = ReviewFilters(regions=("spb",), default_region="spb")
        assert queue.counts(spb)["pending"] == 3
        krd = ReviewFilters(regions=("krd",), default_region="spb")
        assert queue.counts(krd) == {"pending": 0, "reviewed": 0, "overdue": 0}
        assert queue.facets(krd)["district"] == [] and queue.facets(spb)["district"] == ["Невский"]
        assert queue.regions_of([pid(0), pid(1), "nope"]) == {pid(0): None, pid(1): None}
        mine = corrections.query(regions=("spb",), default_region="spb")
        assert [c.idempotency_key for c in mine] == ["k0", "k1"]
        assert corrections.query(regions=("krd",), default_region="spb") == []

        # The old account works in the default region only, and signs in as before.
        settings = Settings(_env_file=None, regions=["spb", "krd"], database_url=store_url)
        verdict = Authenticator.on_store(settings, engine).check(token, address="10.0.0.1")
        assert verdict.identity is not None and verdict.identity.name == "Петрова"
        assert verdict.identity.regions == ("spb",)
        assert UserRepository(engine).get("Петрова").regions is None  # NULL, read as spb

        downgrade(engine, BEFORE)  # and back, keeping every row
        assert "regions" not in {c["name"] for c in inspect(engine).get_columns("users")}
        assert CorrectionRepository(engine).events().to_dict("records") == before.to_dict("records")
    finally:
        engine.dispose()
