"""The version of an appeal's labels: the id of its latest correction (0 before any).

Ids only grow and every change of a label is a correction row (history is append-only), so
"the latest id I saw" names exactly what a save was based on: a save over a newer version is
refused with what changed since, instead of silently replacing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cur_ml.errors import StaleVersionError
from cur_ml.store.correction_record import CorrectionRecord

__all__ = ["changes_since", "check_versions", "version_of", "versions"]


def versions(session: Session, ids: Sequence[str]) -> dict[str, int]:
    """prediction_id → its version (0 for one without corrections)."""
    wanted = sorted(set(ids))
    out = dict.fromkeys(wanted, 0)
    for start in range(0, len(wanted), 500):
        q = (
            select(CorrectionRecord.prediction_id, func.max(CorrectionRecord.id))
            .where(CorrectionRecord.prediction_id.in_(wanted[start : start + 500]))
            .group_by(CorrectionRecord.prediction_id)
        )
        out.update({pid: int(v) for pid, v in session.execute(q)})
    return out


def version_of(engine: Engine, prediction_id: str) -> int:
    with Session(engine) as session:
        return versions(session, [prediction_id])[prediction_id]


def changes_since(session: Session, prediction_id: str, version: int) -> list[CorrectionRecord]:
    """Rows of one prediction stored after `version`, oldest first; detached from `session`,
    so they stay readable when its transaction is rolled back (a refused save)."""
    q = (
        select(CorrectionRecord)
        .where(CorrectionRecord.prediction_id == prediction_id, CorrectionRecord.id > version)
        .order_by(CorrectionRecord.id)
    )
    rows = list(session.scalars(q))
    for row in rows:
        session.expunge(row)
    return rows


def check_versions(session: Session, bases: Mapping[int, tuple[str, int]]) -> None:
    """Raise `StaleVersionError` when an item's base version (position → (prediction_id,
    version)) is not its prediction's version now. Run it inside the write transaction,
    after the prediction rows are locked, so nothing can slip in between."""
    if not bases:
        return
    now = versions(session, [pid for pid, _ in bases.values()])
    stale = sorted(i for i, (pid, base) in bases.items() if now[pid] != base)
    if not stale:
        return
    oldest: dict[str, int] = {}
    for i in stale:
        pid, base = bases[i]
        oldest[pid] = min(base, oldest.get(pid, base))
    changes = [
        row for pid, base in sorted(oldest.items()) for row in changes_since(session, pid, base)
    ]
    raise StaleVersionError(stale, changes)
