"""`GET /v1/predictions/{id}`: a served prediction, its corrections, the labels in force."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from cur_ml.api.deps import (
    CorrectionsDep,
    OperatorAuth,
    PredictionsDep,
    SlotDep,
    WriterDep,
    store_errors,
)
from cur_ml.api.errors import ApiError
from cur_ml.api.fields import Text
from cur_ml.api.routers.corrections import AUTH_ERRORS, FLUSH_SECONDS
from cur_ml.api.schemas import ErrorBody, PredictionDetail
from cur_ml.retrain.approvals import LabelBook
from cur_ml.store.corrections import effective_labels
from cur_ml.store.db import aware
from cur_ml.store.review_progress import progress_of

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["corrections"])


@router.get(
    "/predictions/{prediction_id}",
    response_model=PredictionDetail,
    summary="Предсказание: обращение, ответ, история исправлений, действующие метки",
    responses={
        **AUTH_ERRORS,
        404: {"model": ErrorBody, "description": "Такого предсказания нет"},
        422: {"model": ErrorBody},
        503: {"model": ErrorBody},
    },
)
def get_prediction(
    _auth: OperatorAuth,
    prediction_id: Annotated[Text, Path(max_length=64, description="`prediction_id` ответа.")],
    predictions: PredictionsDep,
    corrections: CorrectionsDep,
    writer: WriterDep,
    slot: SlotDep,
) -> dict[str, Any]:
    """The appeal as received, the prediction as answered, every correction (oldest first),
    `effective`: the predicted labels with the latest correction of each field applied,
    `version`: what a correction's `base_version` names, and `review`: which fields were
    sent to review and which of them are still open."""
    with store_errors():
        record = predictions.get(prediction_id)
        if record is None:  # answered a moment ago: it may still wait in the writer's queue
            writer.flush(FLUSH_SECONDS)
            record = predictions.get(prediction_id)
        if record is None:
            raise ApiError(404, "not_found", f"no prediction with prediction_id {prediction_id!r}")
        history = corrections.history(prediction_id)
    follow = LabelBook.of(slot.model).follows if slot.model is not None else None
    verdict = progress_of(record, history, follow)
    return {
        "prediction_id": record.prediction_id,
        "created_at": aware(record.created_at).isoformat(),
        "model_version": record.model_version,
        "request_id": record.request_id,
        "appeal": record.appeal,
        "prediction": record.prediction,
        "corrections": [c.to_dict() for c in history],
        "effective": effective_labels(record, history),
        "reviewed": bool(history),
        "version": max((c.id for c in history), default=0),
        "review": {
            "needed": list(verdict.needed),
            "open": list(verdict.missing),
            "done": verdict.done,
        },
    }
