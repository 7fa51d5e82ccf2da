"""`GET /v1/predictions/{id}`: a served prediction, its corrections, the labels in force."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from cur_ml.api.deps import CorrectionsDep, OperatorAuth, PredictionsDep, WriterDep, store_errors
from cur_ml.api.errors import ApiError
from cur_ml.api.fields import Text
from cur_ml.api.routers.corrections import AUTH_ERRORS, FLUSH_SECONDS
from cur_ml.api.schemas import ErrorBody, PredictionDetail
from cur_ml.store.corrections import effective_labels
from cur_ml.store.db import aware

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
) -> dict[str, Any]:
    """The appeal as received, the prediction as answered, every correction (oldest first)
    and `effective`: the predicted labels with the latest correction of each field applied."""
    with store_errors():
        record = predictions.get(prediction_id)
        if record is None:  # answered a moment ago: it may still wait in the writer's queue
            writer.flush(FLUSH_SECONDS)
            record = predictions.get(prediction_id)
        if record is None:
            raise ApiError(404, "not_found", f"no prediction with prediction_id {prediction_id!r}")
        history = corrections.history(prediction_id)
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
    }
