"""Admin routes that let a new label in: a correction with `allow_new_label`, or an approval
on its own (for imported history). Every approval is recorded: who, when, field, label."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from cur_ml.api.access import AdminRegions
from cur_ml.api.deps import (
    AdminAuth,
    CorrectionsDep,
    RegionsDep,
    RetrainJobsDep,
    ReviewQueueDep,
    WriterDep,
    store_errors,
)
from cur_ml.api.routers.corrections import AUTH_ERRORS, CORRECTION_ERRORS, accept_corrections
from cur_ml.api.schemas import (
    AdminCorrectionsRequest,
    ApprovableField,
    CorrectionsResponse,
    ErrorBody,
    LabelApprovalRequest,
    LabelApprovalResult,
    LabelApprovals,
)
from cur_ml.store.label_approvals import LabelApprovalIn, LabelApprovalRepository

__all__ = ["router"]

# The same settings as the operator routes (any Content-Type is read as JSON).
router = APIRouter(prefix="/v1/admin", tags=["corrections"], strict_content_type=False)


@router.post(
    "/corrections",
    status_code=201,
    response_model=CorrectionsResponse,
    summary="Исправления администратора: с новой меткой только при `allow_new_label`",
    responses={
        200: {"model": CorrectionsResponse, "description": "Всё уже было сохранено (повтор)"},
        **CORRECTION_ERRORS,
    },
)
def post_admin_corrections(
    identity: AdminAuth,
    access: AdminRegions,
    body: AdminCorrectionsRequest,
    corrections: CorrectionsDep,
    writer: WriterDep,
    jobs: RetrainJobsDep,
    regions: RegionsDep,
    queue: ReviewQueueDep,
) -> JSONResponse:
    """As `POST /v1/corrections` (same checks, same answer), except that an item with
    `allow_new_label: true` may carry a label the served model does not know. The label is
    recorded as approved (who: `operator`, when, field, label, the correction) in the same
    transaction, is answered with `new_label: true`, is accepted from operators from then on,
    and may be learned by the next retraining."""
    return accept_corrections(
        body.corrections,
        identity=identity,
        access=access,
        source="admin",
        regions=regions,
        queue=queue,
        corrections=corrections,
        writer=writer,
        jobs=jobs,
    )


@router.post(
    "/labels",
    status_code=201,
    response_model=LabelApprovalResult,
    summary="Одобрить новую метку поля (без исправления)",
    responses={
        200: {"model": LabelApprovalResult, "description": "Метка уже была одобрена"},
        **AUTH_ERRORS,
        422: {"model": ErrorBody, "description": "Неверный ввод: поле и проблема в `detail`"},
        503: {"model": ErrorBody, "description": "Хранилище недоступно; повторите"},
    },
)
def approve_label(
    identity: AdminAuth, body: LabelApprovalRequest, corrections: CorrectionsDep
) -> JSONResponse:
    """Approve a label that no model knows yet — for example one that imported history
    (`cur-ml corrections import`) names but the base data lacks: retraining learns such
    corrections only once their label is approved. 201 when approved now, 200 when it was."""
    item = LabelApprovalIn(
        field=body.field,
        label=body.label,
        # A personal admin approves as themselves; an environment token as the body says.
        approved_by=identity.name or (body.approved_by or "").strip() or "admin",
        comment=body.comment,
    )
    with store_errors():
        record, created = LabelApprovalRepository(corrections.engine).approve(item)
    return JSONResponse(
        {**record.to_dict(), "created": created}, status_code=201 if created else 200
    )


@router.get(
    "/labels",
    response_model=LabelApprovals,
    summary="Одобренные новые метки (кто, когда, поле, метка)",
    responses={**AUTH_ERRORS, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
def list_labels(
    _auth: AdminAuth,
    corrections: CorrectionsDep,
    field: Annotated[ApprovableField | None, Query(description="Только этого поля.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Не больше стольких.")] = 1_000,
) -> dict[str, Any]:
    """Every approval, oldest first."""
    with store_errors():
        rows = LabelApprovalRepository(corrections.engine).all(field=field, limit=limit)
    return {"approvals": [r.to_dict() for r in rows]}
