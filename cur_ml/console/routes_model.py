"""The model in service, and (for admins) the retraining runs and a button to start one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cur_ml.console.retrain_text import run_row
from cur_ml.console.web import HEADS, gate, message, not_ready, redirect, render, stores
from cur_ml.store.operator_stats import daily_counts

__all__ = ["router"]

router = APIRouter()

_METRICS = (
    ("accuracy", "Точность"),
    ("macro_f1", "Macro-F1"),
    ("recall_high", "Полнота «высокой»"),
)
_SPLITS = {"dev": "отложенная часть демо-данных", "held_out": "отложенная выборка"}
#: Seconds between the model page's checks while a retrain is queued or running.
POLL_SECONDS = 5
_NOTICES = {
    "started": (
        "Переобучение поставлено в очередь: его выполнит процесс `cur-ml worker`; "
        "страница обновится сама, когда появится результат."
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


def _live_state(request: Request) -> tuple[str, bool]:
    """What the page shows that a retrain changes (the served version, the newest run and
    its status), and whether to keep watching: a job is queued or running, or the newest
    run was promoted and the service has not loaded its model yet."""
    model = request.app.state.slot.model
    version = model.version if model is not None else ""
    found = stores(request)
    jobs = found.retrain_jobs if found is not None else None
    if jobs is None:
        return version, False
    newest = next(iter(jobs.runs.recent(1)), None)
    if newest is None:
        return version, False
    challenger = (newest.result or {}).get("challenger_version")
    loading = newest.status == "promoted" and bool(challenger) and challenger != version
    waiting = newest.status in ("queued", "running") or loading or jobs.busy
    return f"{version}|{newest.id}|{newest.status}", waiting


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
    admin_jobs = jobs if session.is_admin else None
    runs = [run_row(r) for r in admin_jobs.runs.recent(10)] if admin_jobs is not None else []
    state, waiting = _live_state(request)
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
            "live_state": state,
            "waiting": waiting,
            "poll_seconds": POLL_SECONDS,
            "notice": _NOTICES.get(msg, ""),
            "per_operator": (
                daily_counts(found.corrections.engine, days=7) if found is not None else []
            ),
        },
        session=session,
    )


@router.get("/model/state", summary="Состояние переобучения (для самообновления страницы)")
def model_state(request: Request) -> Response:
    """What the model page polls while a retrain is under way: it reloads when `state`
    differs from the one it was rendered with."""
    session = gate(request)
    if isinstance(session, Response):
        return session
    state, waiting = _live_state(request)
    return JSONResponse({"state": state, "waiting": waiting}, headers={"Cache-Control": "no-store"})


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
