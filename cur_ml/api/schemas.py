"""Request and answer bodies of the HTTP API (CONTRACT sections 1 and 3), with Russian examples."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

__all__ = [
    "Alternative",
    "Appeal",
    "ErrorBody",
    "FieldProblem",
    "ModelInfo",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "ReloadResult",
    "Status",
    "WordSpan",
]

#: Fields of an appeal the model reads (everything but `id`).
MODEL_INPUTS = (
    "text",
    "created_at",
    "source",
    "district",
    "municipality",
    "address",
    "lat",
    "lon",
    "city_object",
)

EXAMPLE_APPEAL = {
    "id": "A-2024-000123",
    "text": "Во дворе дома 15 по улице Дыбенко уже неделю не вывозят мусор, баки переполнены.",
    "created_at": "2024-05-14T09:30:00+03:00",
    "source": "portal",
    "district": "Невский",
    "address": "г.Санкт-Петербург, улица Дыбенко, дом 15",
    "lat": 59.9071,
    "lon": 30.4833,
    "city_object": "Двор",
}

ShortText = Annotated[str | None, Field(max_length=1_000)]


def _no_surrogates(value: Any) -> Any:
    """Lone UTF-16 surrogates ("\\ud800") cannot be stored or sent back as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"contains a character that is not valid Unicode at position {exc.start}"
            ) from None
    return value


class Appeal(BaseModel):
    """A citizen's appeal; only `text` is required, unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [EXAMPLE_APPEAL]})

    text: StrictStr = Field(
        description="Текст обращения как есть (по умолчанию не длиннее 20 000 символов)."
    )
    id: (
        Annotated[StrictStr, Field(max_length=256)]
        | Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
        | None
    ) = Field(
        None, description="Идентификатор обращения у вызывающей стороны; возвращается как есть."
    )
    created_at: StrictStr | None = Field(
        None, description="Когда обращение написано, ISO 8601; от него считается `due_at`."
    )
    source: ShortText = Field(None, description="Откуда: `portal`, `vk`, `ok`, `telegram`, ...")
    district: ShortText = Field(None, description="Район Санкт-Петербурга, например «Невский».")
    municipality: ShortText = None
    address: ShortText = None
    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False, description="Широта.")
    lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False, description="Долгота.")
    city_object: ShortText = Field(None, description="Тип объекта: «Дом», «Двор», «Улица», ...")

    _check_unicode = field_validator(
        "text", "id", "source", "district", "municipality", "address", "city_object"
    )(_no_surrogates)

    @field_validator("created_at")
    @classmethod
    def _iso_8601(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _no_surrogates(value)
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                "is not an ISO 8601 date-time, e.g. 2024-05-14T09:30:00+03:00"
            ) from None
        if not 1900 <= when.year <= 2200:
            raise ValueError(f"year {when.year} is out of range (1900-2200)")
        return value.strip()

    def model_input(self) -> dict[str, Any]:
        """The fields the model reads, missing ones as None."""
        return {name: getattr(self, name) for name in MODEL_INPUTS}


class PredictRequest(BaseModel):
    """One or many appeals; answered in the same order."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "appeals": [
                        EXAMPLE_APPEAL,
                        {"id": 2, "text": "На остановке у метро Ладожская не горит фонарь."},
                    ]
                }
            ]
        },
    )

    appeals: list[Appeal] = Field(
        min_length=1, description="Обращения; по умолчанию не больше 1 000 за запрос."
    )


class Alternative(BaseModel):
    label: str
    confidence: float


class WordSpan(BaseModel):
    """A word of the appeal behind a decision: `text[start:end] == text`."""

    start: int
    end: int
    text: str
    weight: float


class HeadConfidence(BaseModel):
    category: float
    reason: float
    urgency: float
    agency: float


class HeadAlternatives(BaseModel):
    category: list[Alternative]
    reason: list[Alternative]
    urgency: list[Alternative]
    agency: list[Alternative]


class HeadExplanation(BaseModel):
    category: list[WordSpan]
    reason: list[WordSpan]
    urgency: list[WordSpan]
    agency: list[WordSpan]


class Prediction(BaseModel):
    """The answer for one appeal (CONTRACT: the fields of `cur-ml predict` + `prediction_id`)."""

    id: str | int | None = Field(description="`id` of the appeal, echoed.")
    prediction_id: str = Field(description="UUID of this answer; corrections refer to it.")
    model_version: str
    category: str
    reason: str
    urgency: Literal["high", "medium", "low"]
    agency: str
    confidence: HeadConfidence = Field(description="Вероятность выбранной метки каждой головы.")
    alternatives: HeadAlternatives = Field(description="Три лучшие метки каждой головы.")
    deadline_days: int
    due_at: str = Field(description="Срок ответа: `created_at` (или сейчас) + `deadline_days`.")
    needs_review: bool
    review_reasons: list[str]
    explanation: HeadExplanation | None = Field(
        None, description="Слова обращения, определившие решение (при `explain=true`)."
    )


EXAMPLE_PREDICTION = {
    "id": "A-2024-000123",
    "prediction_id": "5b0f3f0e-8a43-4d3c-9d0e-2f1c7a1e9b41",
    "model_version": "20240601-120000-d854e3f4",
    "category": "Благоустройство",
    "reason": "Нарушение сроков вывоза мусора",
    "urgency": "high",
    "agency": "СПб ГКУ ЖА Невского района",
    "confidence": {"category": 0.93, "reason": 0.81, "urgency": 0.88, "agency": 0.74},
    "alternatives": {
        "category": [{"label": "Благоустройство", "confidence": 0.93}],
        "reason": [{"label": "Нарушение сроков вывоза мусора", "confidence": 0.81}],
        "urgency": [{"label": "high", "confidence": 0.88}],
        "agency": [{"label": "СПб ГКУ ЖА Невского района", "confidence": 0.74}],
    },
    "deadline_days": 3,
    "due_at": "2024-05-17T09:30:00+03:00",
    "needs_review": False,
    "review_reasons": [],
    "explanation": {
        head: [{"start": 42, "end": 48, "text": "мусор,", "weight": 0.41}]
        for head in ("category", "reason", "urgency", "agency")
    },
}


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"predictions": [EXAMPLE_PREDICTION], "model_version": "20240601-120000-d854e3f4"}
            ]
        }
    )

    predictions: list[Prediction]
    model_version: str


class FieldProblem(BaseModel):
    field: str = Field(examples=["appeals[0].text"])
    problem: str = Field(examples=["Field required"])


class ErrorBody(BaseModel):
    """Every error answer: a code, what went wrong, and the request id to quote."""

    error: str = Field(examples=["invalid_request"])
    message: str = Field(examples=["appeals[0].text: Field required"])
    detail: list[FieldProblem] = Field(default_factory=list)
    request_id: str | None = None


class Status(BaseModel):
    status: str
    model_version: str | None = None
    detail: str | None = None


class ModelInfo(BaseModel):
    """What is being served: version, training data, held-out metrics, label sets."""

    model_version: str
    created_at: str | None = None
    loaded_at: str
    training_data: dict[str, Any] = Field(description="sha256 and row count of the training data")
    metrics: dict[str, Any]
    labels: dict[str, list[str]]
    libraries: dict[str, str] = Field(default_factory=dict)


class ReloadResult(BaseModel):
    previous_version: str | None
    model_version: str
    changed: bool
