"""The model in service, and (for admins) the retraining runs and a button to start one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from cur_ml.console.web import HEADS, gate, message, not_ready, redirect, render, stores

__all__ = ["router"]

router = APIRouter()

_METRICS = (
    ("accuracy", "Точность"),
    ("macro_f1", "Macro-F1"),
    ("recall_high", "Полнота «высокой»"),
)
_SPLITS = {"dev": "отложенная часть демо-данных", "held_out": "отложенная выборка"}
_STATUS = {
    "running": "идёт",
    "queued": "в очереди",
    "promoted": "принята",
    "rejected": "отклонена",
    "failed": "ошибка",
}
_NOTICES = {
    "started": (
        "Переобучение поставлено в очередь: его выполнит процесс `cur-ml worker`; "
        "обновите страницу, чтобы увидеть результат."
    ),
    "busy": "Переобучение уже идёт; дождитесь его окончания.",
}


def _metric_tables(metrics: dict[str, Any]) -> list[dict]:
    """Per split (dev, held_out...): rows of head × metric, only what the manifest has."""
    tables = []
    for split, per_head in (metrics or {}).items():
        if not isinstance(per_head, dict):
            continue
        rows = []
        for head in HEADS:
            values = per_head.get(head)
            if isinstance(values, dict):
                rows.append({"head": head, "values": [values.get(k) for k, _ in _METRICS]})
        if rows:
            tables.append({"split": _SPLITS.get(split, split), "rows": rows})
    return tables


def _decision_reasons(manifest: dict[str, Any]) -> list[str]:
    """Why the model in service was promoted, in Russian where the gate wrote it."""
    decision = manifest.get("decision") or {}
    return decision.get("reasons_ru") or decision.get("reasons") or []


def _run(run: Any) -> dict:
    result = run.result or {}
    return {
        "id": run.id,
        "status": run.status,
        "status_title": _STATUS.get(run.status, run.status),
        "trigger": run.trigger,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "challenger": result.get("challenger_version"),
        "champion": result.get("champion_version"),
        "reasons": result.get("reasons_ru") or result.get("reasons") or [],
        "corrections": result.get("corrections_applied"),
        "rows": result.get("training_rows"),
        "error": run.error,
    }


@router.get("/model", response_class=HTMLResponse, summary="Модель в работе и переобучения")
def model_page(request: Request, msg: str = "") -> Response:
    session = gate(request)
    if isinstance(session, Response):
        return session
    slot = request.app.state.slot
    model = slot.model
    manifest = model.manifest if model is not None else {}
    data = manifest.get("data") or {}
    found = stores(request)
    jobs = found.retrain_jobs if found is not None else None
    runs = [_run(r) for r in jobs.runs.recent(10)] if jobs is not None and session.is_admin else []
    return render(
        request,
        "model.html",
        {
            "model": model,
            "version": model.version if model is not None else "",
            "load_error": slot.error or "",
            "created_at": manifest.get("created_at"),
            "loaded_at": slot.loaded_at,
            "data_sha": data.get("sha256") or "",
            "data_rows": data.get("rows"),
            "decision_reasons": _decision_reasons(manifest),
            "metric_names": [title for _, title in _METRICS],
            "tables": _metric_tables(manifest.get("metrics") or {}),
            "runs": runs,
            "jobs": jobs,
            "busy": bool(jobs is not None and jobs.busy),
            "notice": _NOTICES.get(msg, ""),
        },
        session=session,
    )


@router.post("/model/retrain", summary="Запустить переобучение (администратор)")
def retrain(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    session = gate(request, admin=True)
    if isinstance(session, Response):
        return session
    if not session.csrf_ok(csrf):
        return message(
            request, session, "Форма устарела", "Форма устарела. Откройте страницу ещё раз.", 403
        )
    found = stores(request)
    if found is None or found.retrain_jobs is None:
        return not_ready(request, session)
    run = found.retrain_jobs.start("console")
    return redirect("/console/model?msg=" + ("started" if run is not None else "busy"))
