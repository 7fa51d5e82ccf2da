"""Request and answer bodies of the HTTP API (CONTRACT sections 1 and 3), with Russian examples."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from cur_ml.api.fields import AppealTime, NonBlankText, Text
from cur_ml.data import INPUT_COLUMNS

__all__ = [
    "AdminCorrectionItem",
    "AdminCorrectionsRequest",
    "Alternative",
    "Appeal",
    "Correction",
    "CorrectionItem",
    "CorrectionPage",
    "CorrectionResult",
    "CorrectionsRequest",
    "CorrectionsResponse",
    "ErrorBody",
    "FieldProblem",
    "LabelApprovalInfo",
    "LabelApprovalRequest",
    "LabelApprovalResult",
    "LabelApprovals",
    "ModelInfo",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "PredictionDetail",
    "ReloadResult",
    "RetrainRequest",
    "RetrainRunInfo",
    "RetrainRuns",
    "ReviewItem",
    "ReviewPage",
    "Status",
    "WordSpan",
]

#: Fields of an appeal the model reads (everything but `id`).
MODEL_INPUTS = INPUT_COLUMNS

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

ShortText = Annotated[Text, Field(max_length=1_000)] | None
#: Checked against the deployment's regions where it is read (422 naming the unknown code).
RegionCode = Annotated[Text, Field(max_length=16, examples=["spb", "krd"])]


def _integral(value: Any) -> Any:
    """JSON Schema's integer includes 5.0: an integral float is that integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


AppealId = (
    Annotated[Text, Field(max_length=256)]
    | Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1), BeforeValidator(_integral)]
    | None
)


class Appeal(BaseModel):
    """A citizen's appeal; only `text` is required, unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [EXAMPLE_APPEAL]})

    text: Text = Field(
        description="Текст обращения как есть (по умолчанию не длиннее 20 000 символов)."
    )
    id: AppealId = Field(
        None, description="Идентификатор обращения у вызывающей стороны; возвращается как есть."
    )
    created_at: AppealTime | None = Field(
        None,
        description="Когда обращение написано: ISO 8601 (RFC 3339), годы 1900–2200; "
        "от него считается `due_at`. Принимаются и другие формы ISO 8601 (только дата, "
        "без смещения — как есть).",
    )
    source: ShortText = Field(None, description="Откуда: `portal`, `vk`, `ok`, `telegram`, ...")
    district: ShortText = Field(None, description="Район Санкт-Петербурга, например «Невский».")
    municipality: ShortText = None
    address: ShortText = None
    # Strict: a JSON number (integer or not), never `true` or "59.9" (the documented type).
    lat: StrictFloat | None = Field(None, ge=-90, le=90, allow_inf_nan=False, description="Широта.")
    lon: StrictFloat | None = Field(
        None, ge=-180, le=180, allow_inf_nan=False, description="Долгота."
    )
    city_object: ShortText = Field(None, description="Тип объекта: «Дом», «Двор», «Улица», ...")
    region: RegionCode | None = Field(
        None,
        description="Код региона, чья модель отвечает (`spb`, `krd`, ...); без него — регион "
        "развёртывания по умолчанию. Неизвестный региону развёртывания код — 422.",
    )

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


class Place(BaseModel):
    """Where the appeal is, as the service resolved it (CONTRACT section 4)."""

    district: str | None = Field(description="Район; null, если место не найдено.")
    municipality: str | None = Field(description="Муниципальное образование, если известно.")
    method: Literal["given", "point", "address_in_text", "none"] = Field(
        description=(
            "Откуда место: `given` — поле обращения, `point` — координаты, "
            "`address_in_text` — адрес в тексте, `none` — не найдено."
        )
    )
    confidence: float = Field(ge=0, le=1)
    notes: list[str] = Field(
        description=(
            "Замечания: `lat_lon_swapped` (широта и долгота перепутаны и исправлены), "
            "`point_outside_region`, `district_contradicts_point`."
        )
    )


class Prediction(BaseModel):
    """The answer for one appeal (CONTRACT: the fields of `cur-ml predict` + `prediction_id`)."""

    id: str | int | None = Field(description="`id` of the appeal, echoed.")
    prediction_id: str = Field(description="UUID of this answer; corrections refer to it.")
    model_version: str
    region: str | None = Field(None, description="Регион, чья модель ответила.")
    category: str
    reason: str
    urgency: Literal["high", "medium", "low"] = Field(
        description=(
            "Решение о срочности в рабочей точке модели: `high`, если P(high) не ниже её порога "
            "(пропуск острого обращения дороже ложной тревоги). Вероятности — в `alternatives`."
        )
    )
    agency: str
    confidence: HeadConfidence = Field(description="Вероятность выбранной метки каждой головы.")
    alternatives: HeadAlternatives = Field(description="Три лучшие метки каждой головы.")
    deadline_days: int
    due_at: str = Field(description="Срок ответа: `created_at` (или сейчас) + `deadline_days`.")
    place: Place | None = Field(None, description="Место обращения и как оно найдено.")
    needs_review: bool
    review_reasons: list[str] = Field(
        description=(
            "Почему нужна проверка: `low_confidence:<голова>`, `place_unknown`, "
            "`place_contradicts_point`, `only_tags_or_links`, `text_too_short`, `not_russian`, "
            "`heads_disagree`, `unknown_district`."
        )
    )
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
    "place": {
        "district": "Невский",
        "municipality": "муниципальный округ Невский округ",
        "method": "point",
        "confidence": 0.97,
        "notes": [],
    },
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
    model_version: str = Field(
        description="Версия модели, ответившей на первое обращение (у каждого ответа — своя "
        "`model_version`: в одном запросе могут быть обращения разных регионов)."
    )


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


class RegionStatus(BaseModel):
    """One region of the deployment and its model."""

    region: str
    default: bool
    loaded: bool
    model_version: str | None = None
    memory_mib: float | None = Field(
        None, description="На сколько выросла резидентная память процесса при загрузке модели."
    )
    idle_seconds: float | None = None


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


# --- operator corrections, review queue, retraining ------------------------------------

CorrectableField = Literal["category", "reason", "urgency", "agency"]
URGENCIES = ("high", "medium", "low")

EXAMPLE_CORRECTION = {
    "prediction_id": "5b0f3f0e-8a43-4d3c-9d0e-2f1c7a1e9b41",
    "field": "agency",
    "value": "СПб ГКУ ЖА Невского района",
    "operator": "ivanova",
    "comment": "Дом обслуживает жилищное агентство, а не администрация района.",
    "idempotency_key": "ivanova-2024-05-14-000123-agency",
}


class CorrectionItem(BaseModel):
    """What one field of a served prediction should have been."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [EXAMPLE_CORRECTION]})

    prediction_id: Annotated[Text, Field(max_length=64)] = Field(
        description="`prediction_id` из ответа `POST /v1/predict`."
    )
    field: CorrectableField = Field(description="Исправляемое поле.")
    value: Annotated[NonBlankText, Field(min_length=1, max_length=512)] = Field(
        description="Правильное значение: одна из меток обслуживающей модели (`GET /v1/model`, "
        "`labels`) или метка, одобренная администратором; для `urgency`: `high`, `medium` или "
        "`low`. Иное — 422 с ближайшими метками. Значение, совпадающее с предсказанным, — "
        "подтверждение оператором. Исправленная причина (`reason`) ведёт за собой категорию и "
        "срочность по таксономии модели, если их не исправляли отдельно.",
    )
    operator: Annotated[Text, Field(max_length=128)] | None = Field(
        None, description="Кто исправил; по умолчанию `operator`."
    )
    comment: Annotated[Text, Field(max_length=2_000)] | None = Field(
        None, description="Пояснение оператора."
    )
    idempotency_key: Annotated[Text, Field(min_length=1, max_length=128)] | None = Field(
        None,
        description="Ключ повтора: запрос с тем же ключом не создаёт второй записи, "
        "а возвращает сохранённую (`created: false`). Без ключа повтор создаст дубликат.",
    )
    base_version: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = Field(
        None,
        description="Версия меток обращения, которую видел оператор: `version` из "
        "`GET /v1/predictions/{id}` (номер последнего исправления, 0 — исправлений не было). "
        "Если с тех пор обращение исправили, ответ 409 `stale_version` со списком изменений "
        "(`changes`), и ничего из запроса не сохраняется. Без поля — без проверки.",
    )

    @field_validator("value")
    @classmethod
    def _value(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if info.data.get("field") == "urgency" and value not in URGENCIES:
            raise ValueError("urgency must be one of: high, medium, low")
        return value


class CorrectionsRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"corrections": [EXAMPLE_CORRECTION]}]}
    )

    corrections: list[CorrectionItem] = Field(
        min_length=1, max_length=1_000, description="От 1 до 1 000 исправлений за запрос."
    )


EXAMPLE_NEW_LABEL = {
    **EXAMPLE_CORRECTION,
    "value": "СПб ГБУ «Мостотрест»",
    "operator": "admin-petrova",
    "comment": "Новое ведомство: мосты переданы ГБУ.",
    "idempotency_key": "petrova-2024-05-14-000124-agency",
    "allow_new_label": True,
}


class AdminCorrectionItem(CorrectionItem):
    """A correction by an admin, who may bring in a label the model does not know."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [EXAMPLE_NEW_LABEL]})

    allow_new_label: bool = Field(
        False,
        description="`true`: значение может быть новой меткой, которой нет у модели; она "
        "записывается как одобренная (кто, когда, поле, метка) и с этих пор принимается и от "
        "операторов. Срочность — всегда `high`, `medium` или `low`.",
    )


class AdminCorrectionsRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"corrections": [EXAMPLE_NEW_LABEL]}]}
    )

    corrections: list[AdminCorrectionItem] = Field(
        min_length=1, max_length=1_000, description="От 1 до 1 000 исправлений за запрос."
    )


ApprovableField = Literal["category", "reason", "agency"]


class LabelApprovalRequest(BaseModel):
    """An admin approves a new label of a field, without a correction (imported history)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "field": "agency",
                    "label": "СПб ГБУ «Мостотрест»",
                    "approved_by": "admin-petrova",
                    "comment": "Есть в истории портала, нет в обучающих данных.",
                }
            ]
        },
    )

    field: ApprovableField = Field(description="Поле, которому добавляется метка.")
    label: Annotated[NonBlankText, Field(min_length=1, max_length=512)] = Field(
        description="Новая метка (не из одних пробелов)."
    )
    approved_by: Annotated[Text, Field(max_length=128)] | None = Field(
        None, description="Кто одобрил; по умолчанию `admin`."
    )
    comment: Annotated[Text, Field(max_length=2_000)] | None = Field(None, description="Почему.")

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value


class LabelApprovalInfo(BaseModel):
    """A label an admin approved."""

    id: int
    field: str
    label: str
    approved_by: str
    comment: str | None
    prediction_id: str | None = Field(description="Исправление, с которым метка пришла.")
    correction_key: str | None = Field(description="`idempotency_key` того исправления.")
    at: str = Field(description="Когда одобрена, ISO 8601 (UTC).")


class LabelApprovalResult(LabelApprovalInfo):
    created: bool = Field(description="`false`: метка уже была одобрена раньше.")


class LabelApprovals(BaseModel):
    approvals: list[LabelApprovalInfo] = Field(description="Старые первыми.")


class Correction(BaseModel):
    """A stored correction."""

    id: int = Field(description="Номер записи (растёт со временем; курсор постраничного чтения).")
    idempotency_key: str
    prediction_id: str | None
    appeal_id: str | None = Field(description="`id` обращения (для импортированной истории).")
    field: CorrectableField
    old_value: str | None = Field(description="Действовавшее значение поля до исправления.")
    value: str
    operator: str
    comment: str | None
    source: str = Field(
        description="`api` (оператор), `admin`, `console`, `import` (загруженная история), "
        "`derived` (последовало за исправленной причиной) или `undo` (оператор отменил своё "
        "исправление в консоли: восстановлено прежнее значение)."
    )
    at: str = Field(description="Когда сохранено, ISO 8601 (UTC).")


class CorrectionResult(Correction):
    created: bool = Field(description="`false`: ключ повтора уже был, возвращена прежняя запись.")
    derived: list[Correction] = Field(
        default_factory=list,
        description="Поля, последовавшие за исправленной причиной (категория, срочность), "
        "записанные вместе с ней (`source`: `derived`).",
    )
    new_label: bool = Field(
        False,
        description="Значения нет среди меток модели: это метка, одобренная администратором "
        "(этим запросом или раньше).",
    )


class CorrectionsResponse(BaseModel):
    corrections: list[CorrectionResult] = Field(description="В порядке запроса.")


class CorrectionPage(BaseModel):
    corrections: list[Correction]
    next_cursor: int | None = Field(
        description="Передайте как `cursor`, чтобы получить следующую страницу; `null` — конец."
    )


class HeadLabels(BaseModel):
    category: str
    reason: str
    urgency: str
    agency: str


class ReviewItem(BaseModel):
    """A prediction waiting for an operator."""

    prediction_id: str
    created_at: str
    id: str | int | None = Field(description="`id` обращения у вызывающей стороны.")
    text: str
    district: str | None
    source: str | None
    category: str
    reason: str
    urgency: str
    agency: str
    confidence: HeadConfidence
    min_confidence: float | None = Field(description="Наименьшая уверенность из четырёх голов.")
    alternatives: HeadAlternatives | None
    review_reasons: list[str]
    deadline_days: int | None = None
    due_at: str | None = None
    overdue: bool | None = Field(
        None, description="`due_at` уже прошёл (null: срока нет); такие идут первыми."
    )
    model_version: str
    region: str | None = Field(None, description="Регион обращения (его модель ответила).")


class ReviewCounts(BaseModel):
    pending: int = Field(description="Ждут проверки (с учётом фильтров).")
    reviewed: int = Field(description="Уже исправлены или подтверждены (с учётом фильтров).")


class ReviewPage(BaseModel):
    items: list[ReviewItem]
    counts: ReviewCounts
    offset: int
    limit: int


class ReviewState(BaseModel):
    """Review by field: the appeal leaves the review queue when every field it was sent to
    review for is accepted or corrected."""

    needed: list[CorrectableField] = Field(description="Поля, отправленные на проверку.")
    open: list[CorrectableField] = Field(description="Из них ещё не принятые и не исправленные.")
    done: bool = Field(description="Все нужные поля проверены: обращения нет в очереди.")


class PredictionDetail(BaseModel):
    """A served prediction with its appeal, corrections and the labels in force now."""

    prediction_id: str
    created_at: str
    model_version: str
    request_id: str | None
    region: str | None = Field(None, description="Регион обращения (его модель ответила).")
    appeal: dict[str, Any] = Field(description="Обращение, как оно пришло.")
    prediction: dict[str, Any] = Field(description="Ответ, как он был отправлен.")
    corrections: list[Correction] = Field(description="История исправлений, от старых к новым.")
    effective: HeadLabels = Field(
        description="Действующие метки: предсказанные, заменённые последними исправлениями."
    )
    reviewed: bool = Field(description="Оператор исправил или подтвердил хотя бы одно поле.")
    version: int = Field(
        description="Версия меток: номер последнего исправления (0 — исправлений нет). "
        "Передайте её в `base_version` исправления, чтобы не затереть чужое."
    )
    review: ReviewState


class StaleVersionBody(ErrorBody):
    """409 `stale_version`: the labels changed since the version a correction was based on."""

    changes: list[Correction] = Field(
        description="Исправления, сохранённые после той версии, от старых к новым."
    )


class RetrainRunInfo(BaseModel):
    """A retraining job: `queued` → `running` → `promoted` | `rejected` | `failed`."""

    id: str
    status: Literal["queued", "running", "promoted", "rejected", "failed"]
    trigger: str = Field(description="`api`, `cli` или `auto` (после N исправлений).")
    started_at: str
    finished_at: str | None
    corrections_seen: int = Field(description="Номер последнего исправления на момент запуска.")
    result: dict[str, Any] | None = Field(
        description="Версии, метрики претендента и чемпиона, решение и его причины."
    )
    error: str | None = Field(description="Почему запуск не удался.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Что просили: `base_data`, `allow_no_match`."
    )
    worker: str | None = Field(None, description="Процесс `cur-ml worker`, который его ведёт.")
    claimed_at: str | None = Field(None, description="Когда работник взял задачу.")
    heartbeat_at: str | None = Field(None, description="Последний признак жизни работника.")
    region: str | None = Field(None, description="Регион, чью модель переобучают.")


class RetrainRequest(BaseModel):
    """What to retrain (an empty body, or none: the deployment's default region)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"region": "krd"}]})

    region: RegionCode | None = Field(
        None, description="Регион, чью модель переобучить; без него — регион по умолчанию."
    )


class RetrainRuns(BaseModel):
    runs: list[RetrainRunInfo] = Field(description="Новые первыми.")
