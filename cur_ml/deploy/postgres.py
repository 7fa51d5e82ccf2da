"""The cluster's databases on the machine's PostgreSQL: made when absent, dropped by
`down --purge`."""

from __future__ import annotations

import psycopg
from psycopg import sql

from cur_ml.deploy.config import ClusterConfig, ClusterError

__all__ = ["create_databases", "drop_databases", "existing_databases", "server_problem"]


def _connect(config: ClusterConfig) -> psycopg.Connection:
    """The maintenance database `postgres`, in autocommit (CREATE / DROP DATABASE need it)."""
    return psycopg.connect(
        host=config.pg_host,
        port=config.pg_port,
        user=config.pg_user,
        dbname="postgres",
        connect_timeout=5,
        autocommit=True,
    )


def server_problem(config: ClusterConfig) -> str | None:
    """None when the PostgreSQL server answers, else why not (one line)."""
    try:
        with _connect(config) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return first
    return None


def _where(config: ClusterConfig) -> str:
    return f"{config.pg_user}@{config.pg_host}:{config.pg_port}"


def existing_databases(config: ClusterConfig) -> list[str]:
    """Which of the cluster's databases exist now."""
    names = [config.store_db, config.mlflow_db]
    with _connect(config) as conn:
        rows = conn.execute(
            "select datname from pg_database where datname = any(%s)", (names,)
        ).fetchall()
    found = {row[0] for row in rows}
    return [name for name in names if name in found]


def create_databases(config: ClusterConfig) -> list[str]:
    """Create the store's and MLflow's databases where absent; the names created."""
    problem = server_problem(config)
    if problem is not None:
        raise ClusterError(
            f"PostgreSQL does not answer at {_where(config)} ({problem}); start it "
            "(e.g. `pg_ctlcluster 15 main start`) or pass --pg-host/--pg-port"
        )
    present = set(existing_databases(config))
    created = []
    with _connect(config) as conn:
        for name in (config.store_db, config.mlflow_db):
            if name not in present:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
                created.append(name)
    return created


def drop_databases(config: ClusterConfig) -> list[str]:
    """Drop both databases (sessions still open on them are ended); the names dropped."""
    problem = server_problem(config)
    if problem is not None:
        raise ClusterError(
            f"PostgreSQL does not answer at {_where(config)} ({problem}): the databases "
            f"{config.store_db} and {config.mlflow_db} were not dropped"
        )
    present = existing_databases(config)
    with _connect(config) as conn:
        for name in present:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
    return present
