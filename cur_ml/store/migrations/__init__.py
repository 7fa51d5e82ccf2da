"""Alembic migrations of the store (env.py, versions/); applied by `cur_ml.store.upgrade`."""
