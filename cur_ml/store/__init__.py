"""Durable records of the service: every prediction served (and, next, operator corrections).

SQLAlchemy 2.0 models on one `Base`, one repository module per table, Alembic
migrations under `migrations/` (applied by `upgrade`, which the API runs at start).
"""

from cur_ml.store.db import Base, make_engine, upgrade
from cur_ml.store.health import StoreHealth, StoreUnavailableError
from cur_ml.store.predictions import PredictionRecord, PredictionRepository, prediction_row
from cur_ml.store.writer import PredictionWriter, StoreBusyError

__all__ = [
    "Base",
    "PredictionRecord",
    "PredictionRepository",
    "PredictionWriter",
    "StoreBusyError",
    "StoreHealth",
    "StoreUnavailableError",
    "make_engine",
    "prediction_row",
    "upgrade",
]
