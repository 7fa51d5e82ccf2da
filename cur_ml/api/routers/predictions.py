"""`GET /v1/predictions/{id}`: a served prediction, its corrections, the labels in force."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from cur_ml.api.access import OperatorRegions
from cur_ml.api.deps import (
    CorrectionsDep,
    OperatorAuth,
    PredictionsDep,
    RegionsDep,
    WriterDep,
    store_errors,
)
from cur_ml.api.errors import ApiError
from cur_ml.api.fields import Text
from cur_ml.api.region_models import RegionModels
from cur_ml.api.routers.corrections import AUTH_ERRORS, FLUSH_SECONDS
from cur_ml.api.schemas import ErrorBody, PredictionDetail
from cur_ml.errors import CurMlError
from cur_ml.retrain.approvals import LabelBook
from cur_ml.store.corrections import Follow, effective_labels
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
    access: OperatorRegions,
    prediction_id: Annotated[Text, Path(max_length=64, description="`prediction_id` ответа.")],
    predictions: PredictionsDep,
    corrections: CorrectionsDep,
    writer: WriterDep,
    regions: RegionsDep,
) -> dict[str, Any]:
    """The appeal as received, the prediction as answered, every correction (oldest first),
    `effective`: the predicted labels with the latest correction of each field applied,
    `version`: what a correction's `base_version` names, and `review`: which fields were
    sent to review and which of them are still open. A prediction of a region the caller
    does not work in is a 404, as one that does not exist."""
    with store_errors():
        record = predictions.get(prediction_id)
        if record is None or not access.sees(record.region):
            # Answered a moment ago, it may still wait in the writer's queue (another
            # region's waits as long: the answer tells nothing of it).
            writer.flush(FLUSH_SECONDS)
            record = predictions.get(prediction_id)
        if record is None or not access.sees(record.region):
            raise ApiError(404, "not_found", f"no prediction with prediction_id {prediction_id!r}")
        history = corrections.history(prediction_id)
    region = access.region_of(record.region)
    verdict = progress_of(record, history, _follow(regions, region))
    return {
        "prediction_id": record.prediction_id,
        "created_at": aware(record.created_at).isoformat(),
        "model_version": record.model_version,
        "region": region,
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


def _follow(regions: RegionModels, region: str) -> Follow | None:
    """The taxonomy of the region's model (what a corrected reason brings), None while it
    has no model loaded."""
    try:
        return LabelBook.of(regions.get(region).slot.require()).follows
    except CurMlError:
        return None
