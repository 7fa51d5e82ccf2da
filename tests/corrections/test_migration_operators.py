"""Migration 0005 (accounts, sessions, claims, failed sign-ins): a store of the schema before it,
with predictions, corrections and label approvals in it, upgrades in place and keeps them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from cur_ml.store import make_engine, upgrade
from cur_ml.store.corrections import CorrectionRepository
from cur_ml.store.db import MIGRATIONS_DIR
from cur_ml.store.users import UserRepository

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
_APPROVALS = sa.table(
    "label_approvals",
    *(sa.column(c) for c in ("field", "label", "approved_by", "created_at")),
)
_NEW_TABLES = {"users", "sessions", "claims", "auth_failures"}


def _populate(engine: sa.Engine) -> None:
    """Rows as the service of schema 0004 wrote them."""
    at = sa.func.now() if engine.dialect.name == "postgresql" else "2026-11-30 10:00:00"
    with engine.begin() as conn:
        conn.execute(
            _PREDICTIONS.insert().values(created_at=at),
            [
                {
                    "prediction_id": f"00000000-0000-4000-8000-{i:012d}",
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
                    "prediction": {"confidence": {"reason": 0.4}},
                }
                for i in range(3)
            ],
        )
        conn.execute(
            _CORRECTIONS.insert().values(created_at=at),
            [
                {
                    "idempotency_key": f"k{i}",
                    "prediction_id": f"00000000-0000-4000-8000-{i:012d}",
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
        conn.execute(
            _APPROVALS.insert().values(created_at=at),
            [{"field": "reason", "label": "Мусор", "approved_by": "admin"}],
        )


def _downgrade(engine: sa.Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("pg_store")


def test_a_populated_0004_store_upgrades_in_place_keeping_its_corrections(url):
    engine = make_engine(url)
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

        _downgrade(engine, "0004_label_approvals")  # and back, still keeping the corrections
        assert not _NEW_TABLES & set(inspect(engine).get_table_names())
        assert CorrectionRepository(engine).events().to_dict("records") == before.to_dict("records")
    finally:
        engine.dispose()
