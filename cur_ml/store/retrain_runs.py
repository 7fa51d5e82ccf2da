"""The `retrain_runs` table: the queue of retraining jobs, their status and their decision.

The API only enqueues a job; a worker process (`cur-ml worker`) claims it exactly once —
`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL, a single writer (`BEGIN IMMEDIATE`) on
SQLite — and beats a heartbeat while it runs. A job whose heartbeat stopped (the worker was
killed) is marked failed by the next claim, so it never stays `running` for ever.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    DateTime,
    Engine,
    String,
    Text,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from cur_ml.store.db import Base, aware
from cur_ml.store.regions import region_in, region_is

__all__ = ["ACTIVE", "RetrainRun", "RetrainRunRepository"]

#: Statuses of a job not finished yet.
ACTIVE = ("queued", "running")


class RetrainRun(Base):
    __tablename__ = "retrain_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: queued → running → promoted | rejected | failed
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: `api`, `cli`, `console`, `auto` (after N corrections)
    trigger: Mapped[str] = mapped_column(String(32))
    #: The region whose model the job retrains (None: the default region).
    region: Mapped[str | None] = mapped_column(String(16), index=True)
    #: When the job was asked for (queued, or started at once by `cur-ml retrain`).
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Highest correction id when the job was asked for (auto-retrain counts from there).
    corrections_seen: Mapped[int] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    #: What the job was asked to do: {"base_data": [...], "allow_no_match": bool}.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Who runs it (`host:pid:…`), since when, and its last sign of life.
    worker: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def to_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return aware(value).isoformat() if value else None

        return {
            "id": self.id,
            "status": self.status,
            "trigger": self.trigger,
            "region": self.region,
            "started_at": when(self.started_at),
            "finished_at": when(self.finished_at),
            "corrections_seen": self.corrections_seen,
            "result": self.result,
            "error": self.error,
            "options": self.options or {},
            "worker": self.worker,
            "claimed_at": when(self.claimed_at),
            "heartbeat_at": when(self.heartbeat_at),
        }


class RetrainRunRepository:
    """Jobs of one store. `stale_after`: a running job whose heartbeat is older is dead.

    Every job belongs to a region; at most one job per region is running at a time, whatever
    the number of workers. `default_region` is the region of jobs queued before regions.
    """

    def __init__(
        self,
        engine: Engine,
        stale_after: timedelta = timedelta(minutes=2),
        default_region: str | None = None,
    ) -> None:
        self.engine = engine
        self.stale_after = stale_after
        self.default_region = default_region

    # ------------------------------------------------------------------ writing
    @contextmanager
    def _exclusive(self) -> Iterator[Connection]:
        """A transaction no other enqueue or SQLite claim runs beside (check-then-write safe).

        SQLite: `BEGIN IMMEDIATE` takes the database's write lock before the first read.
        PostgreSQL: a table lock that conflicts with itself but not with readers.
        """
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("LOCK TABLE retrain_runs IN SHARE ROW EXCLUSIVE MODE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _live(self, now: datetime):
        """A job that counts as in progress: queued, or running with a fresh heartbeat."""
        fresh = now - self.stale_after
        return or_(
            RetrainRun.status == "queued",
            and_(RetrainRun.status == "running", RetrainRun.heartbeat_at >= fresh),
        )

    def enqueue(
        self,
        trigger: str,
        corrections_seen: int,
        options: dict[str, Any] | None = None,
        *,
        only_if_idle: bool = True,
        region: str | None = None,
    ) -> RetrainRun | None:
        """Queue a job of `region` for a worker; None (nothing queued) when `only_if_idle`
        and a job of that region is queued or running already."""
        now = datetime.now(UTC)
        region = region or self.default_region
        run = RetrainRun(
            id=str(uuid.uuid4()),
            status="queued",
            trigger=trigger,
            region=region,
            started_at=now,
            corrections_seen=corrections_seen,
            options=options or {},
        )
        with self._exclusive() as conn:
            live = (
                select(RetrainRun.id)
                .where(self._live(now), region_is(RetrainRun.region, region, self.default_region))
                .limit(1)
            )
            if only_if_idle and conn.execute(live).first():
                return None
            conn.execute(RetrainRun.__table__.insert().values(**_columns(run)))
        return run

    def start(
        self,
        trigger: str,
        corrections_seen: int,
        options: dict[str, Any] | None = None,
        worker: str | None = None,
        region: str | None = None,
    ) -> RetrainRun:
        """A job run at once by the caller (`cur-ml retrain` without `--queue`): running now."""
        now = datetime.now(UTC)
        run = RetrainRun(
            id=str(uuid.uuid4()),
            status="running",
            trigger=trigger,
            region=region or self.default_region,
            started_at=now,
            corrections_seen=corrections_seen,
            options=options or {},
            worker=worker,
            claimed_at=now,
            heartbeat_at=now,
        )
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.add(run)
        return run

    def claim(self, worker: str) -> RetrainRun | None:
        """Take the oldest queued job for `worker` of a region with no job running; None when
        there is none. Exactly one of any number of concurrent claimers gets a given job, and
        no two run for one region at once. Dead workers' jobs are failed first."""
        self.fail_stale()
        now = datetime.now(UTC)
        claimed = {"status": "running", "worker": worker, "claimed_at": now, "heartbeat_at": now}
        running = aliased(RetrainRun)
        busy_region = (
            select(running.id)
            .where(
                running.status == "running",
                running.heartbeat_at >= now - self.stale_after,
                func.coalesce(running.region, "") == func.coalesce(RetrainRun.region, ""),
            )
            .exists()
        )
        oldest = (
            select(RetrainRun.id)
            .where(RetrainRun.status == "queued", ~busy_region)
            .order_by(RetrainRun.started_at, RetrainRun.id)
            .limit(1)
        )
        # The table lock (not SKIP LOCKED): "no job of this region running" must hold until
        # the claim is written, and claims are rare.
        with self._exclusive() as conn:
            run_id = conn.execute(oldest).scalar()
            if run_id is None:
                return None
            done = conn.execute(
                update(RetrainRun)
                .where(RetrainRun.id == run_id, RetrainRun.status == "queued")
                .values(**claimed)
            )
            if done.rowcount != 1:  # pragma: no cover - the lock makes this impossible
                return None
        return self.get(run_id)

    def heartbeat(self, run_id: str, worker: str) -> bool:
        """The worker is alive; False when the job is no longer this worker's running job."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(RetrainRun)
                .where(
                    RetrainRun.id == run_id,
                    RetrainRun.worker == worker,
                    RetrainRun.status == "running",
                )
                .values(heartbeat_at=datetime.now(UTC))
            )
        return (done.rowcount or 0) == 1

    def finish(
        self, run_id: str, status: str, result: dict | None = None, error: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(RetrainRun)
                .where(RetrainRun.id == run_id)
                .values(status=status, result=result, error=error, finished_at=datetime.now(UTC))
            )

    def fail_stale(self, now: datetime | None = None) -> int:
        """Mark running jobs whose heartbeat is older than `stale_after` as failed (their
        worker was killed or lost the store); return how many."""
        now = now or datetime.now(UTC)
        cutoff = now - self.stale_after
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            stale = list(
                session.scalars(
                    select(RetrainRun)
                    .where(
                        RetrainRun.status == "running",
                        or_(RetrainRun.heartbeat_at < cutoff, RetrainRun.heartbeat_at.is_(None)),
                    )
                    .with_for_update(skip_locked=True)
                )
            )
            for run in stale:
                beat = aware(run.heartbeat_at or run.started_at)
                run.status = "failed"
                run.finished_at = now
                run.error = (
                    f"worker {run.worker or '?'} stopped: no heartbeat since "
                    f"{beat.isoformat(timespec='seconds')} "
                    f"(more than {int(self.stale_after.total_seconds())} s); "
                    "the champion was not replaced by this run"
                )
        return len(stale)

    def abandon_running(self, started_before: datetime | None = None) -> int:
        """Runs left `running` by a crashed process are failed: now judged by heartbeat, so a
        live worker's job is never touched (`started_before` is kept for callers, unused)."""
        return self.fail_stale()

    # ------------------------------------------------------------------ reading
    def get(self, run_id: str) -> RetrainRun | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(RetrainRun, run_id)

    def recent(self, limit: int = 20, regions: Sequence[str] | None = None) -> list[RetrainRun]:
        """The newest jobs first (of `regions` only, when given)."""
        query = select(RetrainRun).where(region_in(RetrainRun.region, regions, self.default_region))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query.order_by(RetrainRun.started_at.desc()).limit(limit)))

    def last_corrections_seen(self, region: str | None = None) -> int:
        """Correction id the newest run (of `region`, when given) started from (0 before any)."""
        runs = self.recent(1, [region] if region else None)
        return runs[0].corrections_seen if runs else 0

    def running(self) -> list[RetrainRun]:
        """Runs not finished yet (by this process or another one sharing the store)."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(
                session.scalars(
                    select(RetrainRun)
                    .where(RetrainRun.status == "running")
                    .order_by(RetrainRun.started_at)
                )
            )

    def active(self, region: str | None = None) -> RetrainRun | None:
        """The oldest job (of `region`; None: of any) queued or running with a live
        heartbeat, if any."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(
                select(RetrainRun)
                .where(
                    self._live(datetime.now(UTC)),
                    region_is(RetrainRun.region, region, self.default_region),
                )
                .order_by(RetrainRun.started_at)
                .limit(1)
            ).first()


def _columns(run: RetrainRun) -> dict[str, Any]:
    return {c.key: getattr(run, c.key) for c in RetrainRun.__table__.columns}
