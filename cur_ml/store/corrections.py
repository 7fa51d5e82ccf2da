"""The `corrections` table: append-only history of what operators said a field should have been.

Nothing here is ever updated or deleted; the latest correction of a field wins. A
client-supplied `idempotency_key` makes retries safe: the same key stores one row.
A corrected reason may bring derived rows (`source` = `derived`) for the fields that
follow it, and a correction may approve its new label, all in the one transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cur_ml.errors import IdempotencyKeyReusedError, UnknownPredictionError
from cur_ml.store.correction_record import DERIVED, UNDO, CorrectionRecord, is_undo, taken_back
from cur_ml.store.label_approvals import LabelApproval, LabelApprovalIn, insert_approvals
from cur_ml.store.predictions import HEAD_FIELDS, PredictionRecord
from cur_ml.store.regions import region_in, region_is
from cur_ml.store.review_progress import refresh as refresh_progress
from cur_ml.store.versions import check_versions

__all__ = [
    "CORRECTABLE_FIELDS",
    "CorrectionIn",
    "CorrectionRecord",
    "CorrectionRepository",
    "Follow",
    "Stored",
    "effective_labels",
    "writing",
]

CORRECTABLE_FIELDS = HEAD_FIELDS
#: Fields that may follow a corrected reason (which of them, and to what, `Follow` says).
FOLLOWER_FIELDS = ("category", "urgency")
#: reason → the values of the fields that follow it (empty when none do).
Follow = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class CorrectionIn:
    """A correction to store (already validated by the caller)."""

    field: str
    new_value: str
    operator: str
    prediction_id: str | None = None
    appeal_id: str | None = None
    old_value: str | None = None
    comment: str | None = None
    idempotency_key: str | None = None
    source: str = "api"
    created_at: datetime | None = None
    #: The version of the prediction's labels this correction was based on (the id of its
    #: latest correction then, 0 for none; see `store.versions`); None: not checked.
    base_version: int | None = None
    #: The region (set on history imports; a served prediction's correction takes its region).
    region: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key or str(uuid.uuid4()),
            "prediction_id": self.prediction_id,
            "appeal_id": self.appeal_id,
            "field": self.field,
            "region": self.region,  # a served prediction's: filled in when stored
            "old_value": self.old_value,
            "new_value": self.new_value,
            "operator": self.operator,
            "comment": self.comment,
            "source": self.source,
            "created_at": self.created_at or datetime.now(UTC),
        }


def _insert_ignoring_duplicates(engine: Engine):
    """INSERT ... ON CONFLICT (idempotency_key) DO NOTHING for the engine's dialect."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(engine.dialect.name)
    return insert(CorrectionRecord).on_conflict_do_nothing(index_elements=["idempotency_key"])


def _labels(
    session: Session, ids: Sequence[str], regions: dict[str, str | None] | None = None
) -> dict[str, dict[str, str]]:
    """Predicted labels of the stored predictions among `ids` (and their regions into
    `regions`); on PostgreSQL the rows are locked (in id order, so two requests never
    deadlock): corrections of one prediction commit one after another, and each sees the one
    before it."""
    out: dict[str, dict[str, str]] = {}
    columns = [getattr(PredictionRecord, f) for f in CORRECTABLE_FIELDS]
    for start in range(0, len(ids), 500):
        q = (
            select(PredictionRecord.prediction_id, PredictionRecord.region, *columns)
            .where(PredictionRecord.prediction_id.in_(ids[start : start + 500]))
            .order_by(PredictionRecord.prediction_id)
            .with_for_update()
        )
        for pid, region, *values in session.execute(q):
            out[pid] = dict(zip(CORRECTABLE_FIELDS, values, strict=True))
            if regions is not None:
                regions[pid] = region
    return out


def _latest(
    session: Session, ids: Sequence[str]
) -> tuple[dict[tuple[str, str], str], set[tuple[str, str]]]:
    """(prediction_id, field) → value of its latest correction; and the (prediction_id, field)
    pairs someone corrected on their own (not only as a follower of a reason), in force (an
    undo takes a row back, and the undo itself is no one's own decision)."""
    out: dict[tuple[str, str], str] = {}
    rows: list[tuple[str, str, str, str]] = []
    for start in range(0, len(ids), 500):
        q = (
            select(
                CorrectionRecord.idempotency_key,
                CorrectionRecord.source,
                CorrectionRecord.prediction_id,
                CorrectionRecord.field,
                CorrectionRecord.new_value,
            )
            .where(CorrectionRecord.prediction_id.in_(ids[start : start + 500]))
            .order_by(CorrectionRecord.id)
        )
        for key, source, pid, field, value in session.execute(q):
            out[(pid, field)] = value
            rows.append((key, source, pid, field))
    gone = taken_back((key, source) for key, source, _, _ in rows)
    own = {
        (pid, field)
        for key, source, pid, field in rows
        if source not in (DERIVED, UNDO) and key not in gone
    }
    return out, own


def _derived_key(parent: str, field: str) -> str:
    """The key of a row derived from `parent`: a retry of the parent derives nothing twice."""
    return f"{DERIVED}:{field}:" + hashlib.sha256(parent.encode("utf-8")).hexdigest()[:40]


def _by_keys(session: Session, keys: Sequence[str]) -> dict[str, CorrectionRecord]:
    wanted = sorted(set(keys))
    out: dict[str, CorrectionRecord] = {}
    for start in range(0, len(wanted), 500):
        q = select(CorrectionRecord).where(
            CorrectionRecord.idempotency_key.in_(wanted[start : start + 500])
        )
        out.update((r.idempotency_key, r) for r in session.scalars(q))
    return out


def _check_reuse(rows: Sequence[dict[str, Any]], stored: dict[str, CorrectionRecord]) -> None:
    reused = [
        i
        for i, row in enumerate(rows)
        if row["idempotency_key"] in stored and not _same(stored[row["idempotency_key"]], row)
    ]
    if reused:
        raise IdempotencyKeyReusedError(reused, [rows[i]["idempotency_key"] for i in reused])


def _same(stored: CorrectionRecord, row: dict[str, Any]) -> bool:
    """Whether a retry carries the correction its key stored (operator, comment may differ)."""
    return (stored.prediction_id, stored.appeal_id, stored.field, stored.new_value) == (
        row["prediction_id"],
        row["appeal_id"],
        row["field"],
        row["new_value"],
    )


def effective_labels(
    prediction: PredictionRecord, history: Sequence[CorrectionRecord]
) -> dict[str, str]:
    """The predicted labels overridden by the latest correction of each field."""
    out = {f: getattr(prediction, f) for f in CORRECTABLE_FIELDS}
    for rec in sorted(history, key=lambda r: r.id):
        out[rec.field] = rec.new_value
    return out


def _follower(parent: dict[str, Any], field: str, value: str, old: str) -> dict[str, Any]:
    """The row of a field that moves with a corrected reason."""
    return {
        **parent,
        "idempotency_key": _derived_key(parent["idempotency_key"], field),
        "field": field,
        "old_value": old,
        "new_value": value,
        "comment": f"следует из reason «{parent['new_value']}»"[:2000],
        "source": DERIVED,
    }


def _placed(
    rows: list[dict[str, Any]],
    before: dict[str, CorrectionRecord],
    labels: dict[str, dict[str, str]],
    current: dict[tuple[str, str], str],
    own: set[tuple[str, str]],
    follow: Follow | None,
) -> list[dict[str, Any]]:
    """The rows to insert, in order: each new row gets the `old_value` in force before it,
    and a reason that changes is followed by the rows of the fields that move with it."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        key, pid = row["idempotency_key"], row["prediction_id"]
        out.append(row)  # repeats too: the insert ignores them, the caller finds them
        if key in before or key in seen:
            continue
        seen.add(key)
        if not pid:
            continue
        field = row["field"]
        old = current.get((pid, field), labels[pid][field])
        row["old_value"] = old
        current[(pid, field)] = row["new_value"]
        if follow is None or field != "reason" or row["new_value"] == old:
            continue
        for other, value in follow(row["new_value"]).items():
            prev = current.get((pid, other), labels[pid][other])
            if other not in FOLLOWER_FIELDS or (pid, other) in own or prev == value:
                continue
            current[(pid, other)] = value
            out.append(_follower(row, other, value, prev))
    return out


def _approval(row: dict[str, Any]) -> LabelApprovalIn:
    return LabelApprovalIn(
        field=row["field"],
        label=row["new_value"],
        approved_by=row["operator"],
        comment=row["comment"],
        prediction_id=row["prediction_id"],
        correction_key=row["idempotency_key"],
    )


@contextmanager
def writing(engine: Engine) -> Iterator[Session]:
    """A write transaction; on SQLite it takes the write lock first (BEGIN IMMEDIATE), so its
    reads and its insert see one state and a busy database is waited for, not failed on."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        if engine.dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session


@dataclass
class Stored:
    """What one `add` stored: a (row, is new) per item, the rows derived from each item
    (by position), and the label approvals it made (each with whether it is new)."""

    items: list[tuple[CorrectionRecord, bool]]
    derived: dict[int, list[CorrectionRecord]]
    approvals: list[tuple[LabelApproval, bool]]


class CorrectionRepository:
    """Append and query corrections; every call is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _writing(self) -> AbstractContextManager[Session]:
        return writing(self.engine)

    def add_many(self, items: Sequence[CorrectionIn]) -> list[tuple[CorrectionRecord, bool]]:
        """Store corrections in one transaction; each stored row and whether it is new."""
        return self.add(items).items

    def add(
        self,
        items: Sequence[CorrectionIn],
        *,
        follow: Follow | None = None,
        new_labels: Collection[int] = (),
    ) -> Stored:
        """Store corrections in one transaction (committed on return).

        A key seen before returns the row stored then (a retry), not a duplicate. A correction
        of a served prediction gets `old_value` = the field's effective value before it (its
        latest correction, else the predicted label). With `follow`, a reason that changes
        moves the fields `follow(reason)` names, unless someone corrected such a field of that
        prediction on their own (earlier, or in this request). `new_labels`: positions of items
        whose value is a new label an admin approves with them. Raises
        `UnknownPredictionError` when a `prediction_id` is not stored,
        `IdempotencyKeyReusedError` when a key already stored a different correction,
        `StaleVersionError` when an item's `base_version` is not its prediction's version
        (a retry of a stored key is not checked); nothing is stored then. The review progress
        of the predictions is recomputed in the same transaction.
        """
        rows = [item.row() for item in items]
        keys = [r["idempotency_key"] for r in rows]
        ids = sorted({r["prediction_id"] for r in rows if r["prediction_id"]})
        own_now = {(r["prediction_id"], r["field"]) for r in rows if r["prediction_id"]}
        region_of: dict[str, str | None] = {}
        with self._writing() as session:
            labels = _labels(session, ids, region_of)
            unknown = [
                i
                for i, r in enumerate(rows)
                if r["prediction_id"] and r["prediction_id"] not in labels
            ]
            if unknown:
                raise UnknownPredictionError(unknown, [rows[i]["prediction_id"] for i in unknown])
            before = _by_keys(session, keys)
            _check_reuse(rows, before)
            check_versions(
                session,
                {
                    i: (item.prediction_id, item.base_version)
                    for i, item in enumerate(items)
                    if item.prediction_id
                    and item.base_version is not None
                    and rows[i]["idempotency_key"] not in before
                },
            )
            current, own = _latest(session, ids)
            own |= own_now
            to_insert = _placed(rows, before, labels, current, own, follow)
            for row in to_insert:  # a correction belongs to its prediction's region
                if row["prediction_id"]:
                    row["region"] = region_of.get(row["prediction_id"])
            approvals = insert_approvals(session, [_approval(rows[i]) for i in new_labels])
            inserted: set[str] = set()
            if to_insert:
                stmt = _insert_ignoring_duplicates(self.engine).returning(
                    CorrectionRecord.idempotency_key
                )
                inserted = set(session.scalars(stmt, to_insert))
                refresh_progress(session, ids, follow)
            # A reason's followers, also those stored by an earlier try of the same key.
            followers = {
                i: [_derived_key(r["idempotency_key"], f) for f in FOLLOWER_FIELDS]
                for i, r in enumerate(rows)
                if r["prediction_id"] and r["field"] == "reason"
            }
            stored = _by_keys(session, keys + [k for ks in followers.values() for k in ks])
            _check_reuse(rows, stored)  # a concurrent request may have used a key meanwhile
        out, seen = [], set()
        for key in keys:
            out.append((stored[key], key in inserted and key not in seen))
            seen.add(key)
        derived = {i: [stored[k] for k in ks if k in stored] for i, ks in followers.items()}
        return Stored(out, {i: rs for i, rs in derived.items() if rs}, approvals)

    def add_history(self, items: Sequence[CorrectionIn]) -> list[tuple[CorrectionRecord, bool]]:
        """Store recorded history as it is (imports, restores): no check that a prediction is
        stored, `old_value` kept, nothing derived (derived rows are part of the history).
        A key seen before is a repeat; one that stored a different correction raises
        `IdempotencyKeyReusedError` and nothing is stored."""
        rows = [item.row() for item in items]
        keys = [r["idempotency_key"] for r in rows]
        with self._writing() as session:
            _check_reuse(rows, _by_keys(session, keys))
            stmt = _insert_ignoring_duplicates(self.engine).returning(
                CorrectionRecord.idempotency_key
            )
            inserted = set(session.scalars(stmt, rows)) if rows else set()
            stored = _by_keys(session, keys)
            _check_reuse(rows, stored)
            if inserted:
                refresh_progress(
                    session, [r["prediction_id"] for r in rows if r["prediction_id"]], None
                )
        out, seen = [], set()
        for key in keys:
            out.append((stored[key], key in inserted and key not in seen))
            seen.add(key)
        return out

    def history(self, prediction_id: str) -> list[CorrectionRecord]:
        """Every correction of one prediction, oldest first."""
        q = (
            select(CorrectionRecord)
            .where(CorrectionRecord.prediction_id == prediction_id)
            .order_by(CorrectionRecord.id)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(q))

    def query(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        field: str | None = None,
        operator: str | None = None,
        prediction_id: str | None = None,
        after_id: int = 0,
        limit: int = 100,
        regions: Sequence[str] | None = None,
        default_region: str | None = None,
    ) -> list[CorrectionRecord]:
        """Corrections in id order (keyset paging: pass the last id seen as `after_id`); of
        `regions` only when given (rows without a region are `default_region`'s)."""
        q = select(CorrectionRecord).where(CorrectionRecord.id > after_id)
        if regions is not None:
            q = q.where(region_in(CorrectionRecord.region, regions, default_region))
        if since is not None:
            q = q.where(CorrectionRecord.created_at >= since)
        if until is not None:
            q = q.where(CorrectionRecord.created_at < until)
        if field is not None:
            q = q.where(CorrectionRecord.field == field)
        if operator is not None:
            q = q.where(CorrectionRecord.operator == operator)
        if prediction_id is not None:
            q = q.where(CorrectionRecord.prediction_id == prediction_id)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(q.order_by(CorrectionRecord.id).limit(limit)))

    def count(
        self, after_id: int = 0, region: str | None = None, default: str | None = None
    ) -> int:
        """Corrections stored after `after_id` (of `region` when given; `default`: the region
        of rows without one)."""
        with Session(self.engine) as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(CorrectionRecord)
                    .where(
                        CorrectionRecord.id > after_id,
                        region_is(CorrectionRecord.region, region, default),
                    )
                )
                or 0
            )

    def last_id(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.max(CorrectionRecord.id))) or 0

    def events(self, source: str | None = None) -> pd.DataFrame:
        """All events in force as a frame (prediction_id, appeal_id, at, field, new, old),
        oldest first: an undo and the row it took back are left out (retraining learns what
        operators stand by)."""
        q = select(
            CorrectionRecord.id,
            CorrectionRecord.prediction_id,
            CorrectionRecord.appeal_id,
            CorrectionRecord.created_at.label("at"),
            CorrectionRecord.field,
            CorrectionRecord.new_value.label("new"),
            CorrectionRecord.old_value.label("old"),
            CorrectionRecord.source,
            CorrectionRecord.idempotency_key.label("key"),
        )
        if source is not None:
            q = q.where(CorrectionRecord.source.in_((source, UNDO)))
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(q.order_by(CorrectionRecord.id)).mappings().all())
        if not frame.empty:
            pairs = list(zip(frame["key"], frame["source"], strict=True))
            gone = taken_back(pairs) | {k for k, s in pairs if is_undo(k, s)}
            frame = frame[~frame["key"].isin(gone)].drop(columns="key").reset_index(drop=True)
        if frame.empty:
            return pd.DataFrame(
                columns=["id", "prediction_id", "appeal_id", "at", "field", "new", "old", "source"]
            )
        return frame
