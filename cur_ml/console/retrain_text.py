"""Retraining runs as the model page shows them: in Russian, corrections counted as corrections.

The gate writes its reasons in both languages (`reasons_ru`); failures and refusals are
recorded in English for logs and the API, so the page puts a Russian line first and keeps
the recorded text beside it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["STATUS_TITLES", "TRIGGER_TITLES", "error_ru", "run_row"]

STATUS_TITLES = {
    "running": "идёт",
    "queued": "в очереди",
    "promoted": "принята",
    "rejected": "отклонена",
    "failed": "ошибка",
}
TRIGGER_TITLES = {
    "api": "API",
    "cli": "командная строка",
    "console": "консоль",
    "auto": "автоматически",
}
#: (pattern of a recorded error, what it means in Russian); the first match wins.
_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), text)
    for pattern, text in (
        (
            r"^no base data named",
            "не названы базовые данные: задайте CUR_ML_BASE_DATA или --base-data",
        ),
        (r"no corrections are stored yet", "отказано: исправлений ещё нет"),
        (
            r"^retrain refused: none of the",
            "отказано: ни одно исправление не относится к обращениям базовых данных "
            "или к обслуженным предсказаниям",
        ),
        (r"has no rows of split", "в базовых данных нет строк нужной части (split)"),
        (r"too few to hold any out", "в базовых данных слишком мало строк для сравнения"),
        (
            r"every base row of the split is in the holdout",
            "все строки базовых данных ушли в отложенную выборку: обучать не на чем",
        ),
        (r"^worker \S+ was interrupted", "обработчик переобучения остановлен во время работы"),
        (
            r"^worker \S+ stopped: no heartbeat",
            "обработчик переобучения перестал отвечать; модель в работе не заменена",
        ),
    )
)


def error_ru(error: str | None) -> str:
    """A Russian line for a recorded failure (the recorded text is shown beside it)."""
    if not error:
        return ""
    for pattern, text in _ERRORS:
        if pattern.search(error):
            return text
    return "переобучение завершилось ошибкой; модель в работе не заменена"


def run_row(run: Any) -> dict:
    """One run of the model page. `corrections`: correction events the run used (a row of
    training data may carry several); `changed_rows`: training appeals they changed."""
    result = run.result or {}
    matched = result.get("corrections_matched")
    return {
        "id": run.id,
        "status": run.status,
        "status_title": STATUS_TITLES.get(run.status, run.status),
        "trigger": TRIGGER_TITLES.get(run.trigger, run.trigger),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "challenger": result.get("challenger_version"),
        "champion": result.get("champion_version"),
        "reasons": result.get("reasons_ru") or result.get("reasons") or [],
        "corrections": matched,
        "changed_rows": result.get("corrections_applied"),
        "rows": result.get("training_rows"),
        "error": run.error,
        "error_ru": error_ru(run.error),
    }
