"""Migration 0005 (accounts, sessions, claims, failed sign-ins): a store of the schema before it,
with predictions, corrections and label approvals in it, upgrades in place and keeps them."""

from __future__ import annotations

import sqlalchemy as sa
from migration_support import downgrade, insert_corrections, insert_predictions, written_at
from sqlalchemy import inspect

from cur_ml.store import make_engine, upgrade
from cur_ml.store.corrections import CorrectionRepository
from cur_ml.store.users import UserRepository

_APPROVALS = sa.table(
    "label_approvals",
    *(sa.column(c) for c in ("field", "label", "approved_by", "created_at")),
)
_NEW_TABLES = {"users", "sessions", "claims", "auth_failures"}


def _populate(engine: sa.Engine) -> None:
    """Rows as the service of schema 0004 wrote them."""
    insert_predictions(engine, 3, {"confidence": {"reason": 0.4}})
    insert_corrections(engine, 2)
    with engine.begin() as conn:
        conn.execute(
            _APPROVALS.insert().values(created_at=written_at(engine)),
            [{"field": "reason", "label": "Мусор", "approved_by": "admin"}],
        )


def test_a_populated_0004_store_upgrades_in_place_keeping_its_corrections(store_url):
    engine = make_engine(store_url)
    try:
        upgrade(engine, "0004_label_approvals")
        _populate(engine)
        before = CorrectionRepository(engine).events()
        assert len(before) == 2

        upgrade(engine)  # what `cur-ml serve` does at start

        tables = set(inspect(engine).get_table_names())
        assert _NEW_TABLES <= tables
        after = CorrectionRepository(engine).events()
        assert after.to_dict("records") == before.to_dict("records")
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from predictions")).scalar_one() == 3
            assert conn.execute(sa.text("select count(*) from label_approvals")).scalar_one() == 1
        # The new tables work on the upgraded store.
        user, token = UserRepository(engine).add("Петрова", "operator")
        assert UserRepository(engine).check(token).id == user.id

        downgrade(engine, "0004_label_approvals")  # and back, still keeping the corrections
        assert not _NEW_TABLES & set(inspect(engine).get_table_names())
        assert CorrectionRepository(engine).events().to_dict("records") == before.to_dict("records")
    finally:
        engine.dispose()
