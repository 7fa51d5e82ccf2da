"""`POST /v1/corrections` (operators say what a field should have been) and `GET` their history.

A correction carries a label of the model of its prediction's region (or one an admin
approved); a corrected reason moves the category and urgency its taxonomy ties to it. One that
names the version of the labels it was based on (`base_version`) is refused (409) when someone
changed them since. A prediction of a region the caller does not work in is answered as one
that does not exist.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cur_ml.api.access import OperatorRegions, RegionFilter, region_scope
from cur_ml.api.deps import (
    CorrectionsDep,
    OperatorAuth,
    RegionsDep,
    RetrainJobsDep,
    ReviewQueueDep,
    WriterDep,
    store_errors,
)
from cur_ml.api.fields import QueryTime, Text
from cur_ml.api.logs import request_id_var
from cur_ml.api.region_models import RegionModels
from cur_ml.api.schemas import (
    AdminCorrectionItem,
    CorrectableField,
    CorrectionItem,
    CorrectionPage,
    CorrectionsRequest,
    CorrectionsResponse,
    ErrorBody,
    StaleVersionBody,
)
from cur_ml.auth import Identity, RegionAccess
from cur_ml.errors import IdempotencyKeyReusedError, StaleVersionError, UnknownPredictionError
from cur_ml.retrain.approvals import LabelBook, contradictions
from cur_ml.retrain.jobs import RetrainJobs
from cur_ml.store.corrections import CorrectionIn, CorrectionRepository, Stored
from cur_ml.store.label_approvals import LabelApprovalRepository
from cur_ml.store.review import ReviewQueue
from cur_ml.store.writer import PredictionWriter

__all__ = ["AUTH_ERRORS", "CORRECTION_ERRORS", "accept_corrections", "router"]

log = logging.getLogger(__name__)

# Any Content-Type is read as JSON, as for /v1/predict.
router = APIRouter(prefix="/v1", tags=["corrections"], strict_content_type=False)

#: Seconds to wait for the prediction writer before calling a prediction_id unknown.
FLUSH_SECONDS = 5.0
_UNKNOWN_ID = "unknown prediction_id: no such prediction served"

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Нет токена"},
    403: {"model": ErrorBody, "description": "Токен не даёт нужной роли, или маршрут выключен"},
}
_STORE_DOWN = {
    503: {"model": ErrorBody, "description": "Хранилище недоступно или модель ещё не загружена"}
}
#: The answers of a corrections request other than 2xx, documented once for both routes.
CORRECTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    422: {
        "model": ErrorBody,
        "description": "Неверный ввод: поле и проблема в `detail`. Метка, которой нет у модели, "
        "называется с ближайшими метками; противоречие причины и категории (срочности) в одном "
        "запросе называет оба поля",
    },
    409: {
        "model": StaleVersionBody,
        "description": "`stale_version`: метки обращения изменили после версии `base_version`; "
        "в `changes` — что изменилось (поле, было, стало, кто, когда). Ничего не сохранено",
    },
    **_STORE_DOWN,
}


def _problems(positions: list[int], field: str, problem: str) -> RequestValidationError:
    return _named({i: [problem] for i in positions}, field)


def _named(problems: dict[int, list[str]], field: str) -> RequestValidationError:
    """One entry per item (its problems joined), in request order."""
    return RequestValidationError(
        [
            {"type": "value_error", "loc": ("body", "corrections", i, field), "msg": "; ".join(p)}
            for i, p in sorted(problems.items())
        ]
    )


def _store(
    repo: CorrectionRepository,
    writer: PredictionWriter,
    items: list[CorrectionIn],
    **options: Any,
) -> Stored:
    """Store in one transaction; an unknown prediction_id is retried once after the writer
    flushed (a prediction answered a moment ago may still wait in its queue)."""
    for attempt in (1, 2):
        try:
            with store_errors():
                return repo.add(items, **options)
        except UnknownPredictionError as exc:
            if attempt == 1:
                writer.flush(FLUSH_SECONDS)
                continue
            raise _problems(exc.positions, "prediction_id", _UNKNOWN_ID) from None
        except IdempotencyKeyReusedError as exc:
            raise _problems(
                exc.positions,
                "idempotency_key",
                "this idempotency_key already stored a different correction",
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _new_labels(
    body: list[CorrectionItem], book: LabelBook, approvals: LabelApprovalRepository
) -> set[int]:
    """Positions whose value the model does not know but an admin approves now (or did
    before); raises the 422 naming every other unknown label, with the closest ones."""
    unknown = {
        i: (c.field, c.value) for i, c in enumerate(body) if not book.knows(c.field, c.value)
    }
    if not unknown:
        return set()
    with store_errors():
        approved = approvals.approved(unknown.values())
    allowed = {
        i
        for i, pair in unknown.items()
        if pair in approved or getattr(body[i], "allow_new_label", False)
    }
    refused_at = [i for i in unknown if i not in allowed]
    # The answer shows 100 problems at most: search the closest labels for those only.
    refused = {i: [book.unknown(*unknown[i], closest=n < 100)] for n, i in enumerate(refused_at)}
    if refused:
        raise _named(refused, "value")
    return allowed


def _authors(
    body: list[CorrectionItem] | list[AdminCorrectionItem], identity: Identity | None
) -> list[str]:
    """Who each correction is by. A personal token: its account, whatever the body says (an
    `operator` naming someone else is a 422). An environment token names nobody: the body's
    `operator`, as before accounts existed."""
    if identity is None or identity.name is None:
        return [(c.operator or "").strip() or "operator" for c in body]
    wrong = {
        i: [f"the author is the signed-in account «{identity.name}»; leave operator out"]
        for i, c in enumerate(body)
        if (c.operator or "").strip() not in ("", identity.name)
    }
    if wrong:
        raise _named(wrong, "operator")
    return [identity.name] * len(body)


def _region_of_request(
    body: list[CorrectionItem] | list[AdminCorrectionItem],
    access: RegionAccess,
    queue: ReviewQueue,
    writer: PredictionWriter,
) -> tuple[str, list[int]]:
    """The region whose model judges the request (its predictions' region), and the
    positions whose prediction the caller cannot know: not stored, or of a region the caller
    does not work in. Both kinds are found, waited for and answered alike, so that the
    answer never tells that another region's prediction exists. Predictions of two of the
    caller's regions in one request are a 422: each region has its own labels."""
    ids = [c.prediction_id for c in body]
    with store_errors():
        found = queue.regions_of(ids)
        if any(pid not in found or not access.sees(found[pid]) for pid in ids):
            writer.flush(FLUSH_SECONDS)  # answered a moment ago: may wait in the queue
            found = queue.regions_of(ids)
    region_at = {
        i: access.region_of(found[pid])
        for i, pid in enumerate(ids)
        if pid in found and access.sees(found[pid])
    }
    hidden = [i for i in range(len(ids)) if i not in region_at]
    if not region_at:  # nothing known: judged by the caller's first region's model
        return (access.regions or (access.default,))[0], hidden
    first = region_at[min(region_at)]
    mixed = {
        i: [
            f"this prediction is of region {r!r}, the request's first of {first!r}: "
            "corrections of one request belong to one region"
        ]
        for i, r in region_at.items()
        if r != first
    }
    if mixed:
        raise _named(mixed, "prediction_id")
    return first, hidden


def accept_corrections(
    body: list[CorrectionItem] | list[AdminCorrectionItem],
    *,
    identity: Identity | None,
    access: RegionAccess,
    source: str,
    regions: RegionModels,
    queue: ReviewQueue,
    corrections: CorrectionRepository,
    writer: PredictionWriter,
    jobs: RetrainJobs,
) -> JSONResponse:
    """Check the labels against the model of the predictions' region, store with the
    followers of each corrected reason, start an automatic retrain if due; the answer of
    both correction routes."""
    region, hidden = _region_of_request(body, access, queue, writer)
    book = LabelBook.of(regions.get(region).slot.require())
    new = _new_labels(body, book, LabelApprovalRepository(corrections.engine))
    clashes = contradictions([(c.prediction_id, c.field, c.value) for c in body], book)
    if clashes:
        raise _named(clashes, "value")
    if hidden:  # as the store answers an unknown prediction_id
        raise _problems(hidden, "prediction_id", _UNKNOWN_ID)
    authors = _authors(body, identity)
    items = [
        CorrectionIn(
            field=c.field,
            new_value=c.value,
            operator=author,
            prediction_id=c.prediction_id,
            comment=c.comment,
            idempotency_key=c.idempotency_key,
            source=source,
            base_version=c.base_version,
        )
        for c, author in zip(body, authors, strict=True)
    ]
    fresh = [i for i in sorted(new) if getattr(body[i], "allow_new_label", False)]
    try:
        stored = _store(corrections, writer, items, follow=book.follows, new_labels=fresh)
    except StaleVersionError as exc:
        return _stale(exc, body)
    created = any(is_new for _, is_new in stored.items)
    if created:
        _auto_retrain(jobs)
    payload = {
        "corrections": [
            {
                **rec.to_dict(),
                "created": is_new,
                "derived": [d.to_dict() for d in stored.derived.get(i, [])],
                "new_label": i in new,
            }
            for i, (rec, is_new) in enumerate(stored.items)
        ]
    }
    return JSONResponse(payload, status_code=201 if created else 200)


def _stale(
    exc: StaleVersionError, body: list[CorrectionItem] | list[AdminCorrectionItem]
) -> JSONResponse:
    """409: what changed since the versions the items were based on (nothing was stored)."""
    detail = [
        {
            "field": f"corrections[{i}].base_version",
            "problem": f"the labels of {body[i].prediction_id} changed after version "
            f"{body[i].base_version}: read GET /v1/predictions/{{id}} again",
        }
        for i in exc.positions[:100]
    ]
    fields = ", ".join(sorted({c.field for c in exc.changes})) or "none"
    payload = {
        "error": "stale_version",
        "message": f"{len(exc.positions)} correction(s) based on an old version of the labels; "
        f"changed since: {fields}",
        "detail": detail,
        "request_id": request_id_var.get(),
        "changes": [c.to_dict() for c in exc.changes],
    }
    return JSONResponse(payload, status_code=409)


def _auto_retrain(jobs: RetrainJobs) -> None:
    """Start an automatic retrain when enough corrections arrived; never fails the request."""
    try:
        run = jobs.maybe_start_auto()
    except Exception:
        log.exception("automatic retrain could not be started")
        return
    if run is not None:
        log.info("automatic retrain started", extra={"retrain_run": run.id})


@router.post(
    "/corrections",
    status_code=201,
    response_model=CorrectionsResponse,
    summary="Исправления операторов: какое значение поля было правильным",
    responses={
        200: {"model": CorrectionsResponse, "description": "Всё уже было сохранено (повтор)"},
        **CORRECTION_ERRORS,
    },
)
def post_corrections(
    identity: OperatorAuth,
    access: OperatorRegions,
    body: CorrectionsRequest,
    corrections: CorrectionsDep,
    writer: WriterDep,
    jobs: RetrainJobsDep,
    regions: RegionsDep,
    queue: ReviewQueueDep,
) -> JSONResponse:
    """Store the corrections of one request in one transaction; the answer comes after the
    commit, so a 2xx correction is durable. `old_value` is the field's value in force before
    (its previous correction, else the prediction). A correction with the predicted value is
    an acceptance: the prediction leaves the review queue all the same.

    A value must be a label of the model of the prediction's region (`GET /v1/model?region=`)
    or one an admin approved (`POST /v1/admin/corrections` with `allow_new_label`); anything
    else is a 422 naming the item and the closest labels. The predictions of one request
    belong to one region; a personal account corrects only its regions' predictions (another
    region's `prediction_id` is answered as an unknown one). A reason that changes moves the
    category and urgency its taxonomy ties to it (`derived` in its answer), unless those were
    corrected on their own for that prediction; a category or urgency in the same request
    that contradicts the reason is a 422 naming both.

    201 when anything new was stored, 200 when every item was a repeat of its
    `idempotency_key` (`created: false`, the stored record returned)."""
    return accept_corrections(
        body.corrections,
        identity=identity,
        access=access,
        source="api",
        regions=regions,
        queue=queue,
        corrections=corrections,
        writer=writer,
        jobs=jobs,
    )


@router.get(
    "/corrections",
    response_model=CorrectionPage,
    summary="История исправлений (постранично, от старых к новым)",
    responses={**AUTH_ERRORS, 422: {"model": ErrorBody}, **_STORE_DOWN},
)
def list_corrections(
    _auth: OperatorAuth,
    access: OperatorRegions,
    corrections: CorrectionsDep,
    since: Annotated[
        QueryTime | None,
        Query(description="Сохранённые не раньше, ISO 8601 (без зоны — UTC)."),
    ] = None,
    until: Annotated[QueryTime | None, Query(description="Сохранённые раньше этого.")] = None,
    field: Annotated[CorrectableField | None, Query(description="Только это поле.")] = None,
    operator: Annotated[
        Text | None, Query(max_length=128, description="Только этот оператор.")
    ] = None,
    prediction_id: Annotated[
        Text | None, Query(max_length=64, description="Только этого предсказания.")
    ] = None,
    cursor: Annotated[
        int,
        # Ids are 64-bit signed integers in both databases: a larger cursor names no row.
        Query(ge=0, le=2**63 - 1, description="`next_cursor` предыдущей страницы; 0 — с начала."),
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1_000, description="Размер страницы.")] = 100,
    region: RegionFilter = None,
) -> dict[str, Any]:
    """Corrections in the order they were stored; follow `next_cursor` until it is null. A
    personal account sees those of its regions only (`region`: one of them)."""
    scope = region_scope(access, region)
    with store_errors():
        rows = corrections.query(
            since=since,
            until=until,
            field=field,
            operator=operator,
            prediction_id=prediction_id,
            after_id=cursor,
            limit=limit + 1,
            regions=scope,
            default_region=access.default,
        )
    page = rows[:limit]
    return {
        "corrections": [r.to_dict() for r in page],
        "next_cursor": page[-1].id if len(rows) > limit else None,
    }
