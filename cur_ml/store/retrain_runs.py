"""The `retrain_runs` table: every retraining job, its status, and its decision."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Engine, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from cur_ml.store.db import Base, aware

__all__ = ["RetrainRun", "RetrainRunRepository"]


class RetrainRun(Base):
    __tablename__ = "retrain_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: queued → running → promoted | rejected | failed
    status: Mapped[str] = mapped_column(String(16))
    #: `api`, `cli`, `auto` (after N corrections)
    trigger: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Highest correction id when the job started (auto-retrain counts from there).
    corrections_seen: Mapped[int] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "trigger": self.trigger,
            "started_at": aware(self.started_at).isoformat() if self.started_at else None,
            "finished_at": aware(self.finished_at).isoformat() if self.finished_at else None,
            "corrections_seen": self.corrections_seen,
            "result": self.result,
            "error": self.error,
        }


class RetrainRunRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(self, trigger: str, corrections_seen: int) -> RetrainRun:
        run = RetrainRun(
            id=str(uuid.uuid4()),
            status="running",
            trigger=trigger,
            started_at=datetime.now(UTC),
            corrections_seen=corrections_seen,
        )
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            session.add(run)
        return run

    def finish(
        self, run_id: str, status: str, result: dict | None = None, error: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(RetrainRun)
                .where(RetrainRun.id == run_id)
                .values(status=status, result=result, error=error, finished_at=datetime.now(UTC))
            )

    def get(self, run_id: str) -> RetrainRun | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(RetrainRun, run_id)

    def recent(self, limit: int = 20) -> list[RetrainRun]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(
                session.scalars(
                    select(RetrainRun).order_by(RetrainRun.started_at.desc()).limit(limit)
                )
            )

    def last_corrections_seen(self) -> int:
        """Correction id the newest run started from (0 before any run)."""
        runs = self.recent(1)
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

    def abandon_running(self, started_before: datetime | None = None) -> int:
        """Mark runs left `running` by a crashed process as failed; return how many.

        `started_before`: only runs started before then (a process start: runs of sibling
        workers started later are alive).
        """
        query = update(RetrainRun).where(RetrainRun.status == "running")
        if started_before is not None:
            query = query.where(RetrainRun.started_at < started_before)
        with self.engine.begin() as conn:
            done = conn.execute(
                query.values(
                    status="failed",
                    error="the process running it stopped",
                    finished_at=datetime.now(UTC),
                )
            )
        return done.rowcount or 0
