"""What `POST /v1/predict` does, without HTTP: predict a batch, stamp it, record it, count it."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from cur_ml.api.batcher import DirectPredictor, PredictBatcher
from cur_ml.api.metrics import ApiMetrics
from cur_ml.api.schemas import Appeal
from cur_ml.errors import CurMlError, UnprocessableAppealsError
from cur_ml.store.predictions import prediction_row
from cur_ml.store.writer import PredictionWriter

__all__ = ["UnprocessableAppealsError", "predict_appeals"]

log = logging.getLogger(__name__)

Predictor = PredictBatcher | DirectPredictor
#: An appeal any working model answers; tells a broken model from a bad appeal.
CANARY = {"text": "Во дворе не вывозят мусор, баки переполнены."}


def _failing(
    predictor: Predictor, records: list[dict], explain: bool, offset: int = 0
) -> list[int]:
    """Indexes of the records the model fails on, by bisection (few calls for few culprits)."""
    try:
        predictor.predict(records, explain)
        return []
    except CurMlError:
        raise
    except Exception:
        if len(records) == 1:
            return [offset]
    mid = len(records) // 2
    return _failing(predictor, records[:mid], explain, offset) + _failing(
        predictor, records[mid:], explain, offset + mid
    )


def _diagnose(predictor: Predictor, records: list[dict], explain: bool, exc: Exception) -> None:
    """Turn a model failure caused by particular appeals into a 422 naming them.

    A failure that the canary appeal shares is the service's fault and stays a 500.
    """
    try:
        predictor.predict([CANARY], explain)
    except Exception:
        raise exc from None
    bad = _failing(predictor, records, explain)
    if not bad:
        raise exc
    log.error("the model failed on appeal(s) %s of a request", bad, exc_info=exc)
    raise UnprocessableAppealsError(bad) from exc


def predict_appeals(
    appeals: list[Appeal],
    predictor: PredictBatcher | DirectPredictor,
    writer: PredictionWriter,
    metrics: ApiMetrics,
    *,
    explain: bool = True,
    request_id: str | None = None,
    region: str | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Predictions in input order, each with a fresh `prediction_id`, committed to the store;
    and the version of the model that made them (one model answers a whole request, so a
    swap meanwhile never mixes versions within one answer).
    """
    records = [a.model_input() for a in appeals]
    try:
        raw, model = predictor.predict(records, explain)
    except CurMlError:
        raise
    except Exception as exc:
        _diagnose(predictor, records, explain, exc)
        raise
    now = datetime.now(UTC)
    out, rows = [], []
    for appeal, pred in zip(appeals, raw, strict=True):
        pred.pop("id", None)
        answer = {"id": appeal.id, "prediction_id": str(uuid.uuid4()), **pred}
        if region is not None:
            answer["region"] = region
        out.append(answer)
        rows.append(
            prediction_row(
                appeal.model_dump(exclude_none=True),
                answer,
                request_id=request_id,
                at=now,
                region=region,
            )
        )
    # Stored before answered: a 2xx carries only prediction_ids that survive a crash.
    writer.record(rows)
    metrics.observe_predictions(out)
    return out, model.version
