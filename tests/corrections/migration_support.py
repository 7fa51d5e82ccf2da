"""Helpers of the migration tests: rows as the service of an older schema wrote them, and a
downgrade to a revision."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from cur_ml.store.db import MIGRATIONS_DIR

#: The columns of `predictions` and `corrections` every schema since 0004 has.
PREDICTIONS = sa.table(
    "predictions",
    *(sa.column(c) for c in ("prediction_id", "created_at", "model_version", "appeal_id")),
    *(sa.column(c) for c in ("category", "reason", "urgency", "agency", "needs_review")),
    *(sa.column(c) for c in ("district", "source", "min_confidence")),
    sa.column("appeal", sa.JSON),
    sa.column("prediction", sa.JSON),
)
CORRECTIONS = sa.table(
    "corrections",
    *(sa.column(c) for c in ("idempotency_key", "prediction_id", "appeal_id", "field")),
    *(sa.column(c) for c in ("old_value", "new_value", "operator", "comment", "source")),
    sa.column("created_at"),
)


def pid(i: int) -> str:
    """The prediction_id of the i-th row `insert_predictions` writes."""
    return f"00000000-0000-4000-8000-{i:012d}"


def written_at(engine: sa.Engine) -> Any:
    """When the old rows were written (the server's now on PostgreSQL, a fixed UTC time on
    SQLite, as the service stored it)."""
    return sa.func.now() if engine.dialect.name == "postgresql" else "2026-11-30 10:00:00"


def insert_predictions(engine: sa.Engine, count: int, prediction: dict[str, Any]) -> None:
    """`count` flagged appeals (a pothole in a yard), each answered with `prediction`."""
    with engine.begin() as conn:
        conn.execute(
            PREDICTIONS.insert().values(created_at=written_at(engine)),
            [
                {
                    "prediction_id": pid(i),
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
                    "prediction": prediction,
                }
                for i in range(count)
            ],
        )


def insert_corrections(engine: sa.Engine, count: int) -> None:
    """A correction of the reason (Яма → Мусор, by Петрова) of each of the first `count`
    predictions."""
    with engine.begin() as conn:
        conn.execute(
            CORRECTIONS.insert().values(created_at=written_at(engine)),
            [
                {
                    "idempotency_key": f"k{i}",
                    "prediction_id": pid(i),
                    "appeal_id": str(i),
                    "field": "reason",
                    "old_value": "Яма",
                    "new_value": "Мусор",
                    "operator": "Петрова",
                    "comment": None,
                    "source": "api",
                }
                for i in range(count)
            ],
        )


def downgrade(engine: sa.Engine, revision: str) -> None:
    """`alembic downgrade revision` on the store at `engine`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
