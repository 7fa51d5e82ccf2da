"""The model of each of the person's regions, and (for admins) its retraining runs and a
button to start one."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cur_ml.auth import RegionAccess
from cur_ml.console.retrain_text import STATUS_TITLES, run_row
from cur_ml.console.web import (
    HEADS,
    access_of,
    gate,
    message,
    not_ready,
    redirect,
    region_model,
    render,
    stores,
)
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


def _chosen(access: RegionAccess, region: str | None) -> str | None:
    """The region the page shows: the one asked for when it is the person's, else their
    first (None: they work in no region this deployment serves)."""
    mine = access.regions
    if region in mine:
        return region
    return mine[0] if mine else None


def _page_url(region: str, access: RegionAccess, path: str = "", **params: str) -> str:
    """The model page (or its `path`) of `region`, named only where the person has several."""
    query = urlencode({**({"region": region} if access.several else {}), **params})
    return f"/console/model{path}" + (f"?{query}" if query else "")


def _live_state(request: Request, region: str) -> tuple[str, bool]:
    """What the page shows that a retrain changes (the region's served version, its newest
    run and that run's status), and whether to keep watching: a job of the region is queued
    or running, or its newest run was promoted and the service has not loaded its model yet."""
    model = region_model(request, region)
    version = model.version if model is not None else ""
    found = stores(request)
    jobs = found.retrain_jobs if found is not None else None
    if jobs is None:
        return version, False
    newest = next(iter(jobs.runs.recent(1, regions=(region,))), None)
    if newest is None:
        return version, False
    challenger = (newest.result or {}).get("challenger_version")
    loading = newest.status == "promoted" and bool(challenger) and challenger != version
    waiting = newest.status in ("queued", "running") or loading
    return f"{version}|{newest.id}|{newest.status}", waiting


def _overview(request: Request, access: RegionAccess, jobs: Any) -> list[dict]:
    """Per region of the person: the version served (None: not loaded in this process
    yet) and the job queued or running."""
    status = {s["region"]: s for s in request.app.state.regions.status()}
    out = []
    for region in access.regions:
        current = jobs.current(region) if jobs is not None else None
        out.append(
            {
                "region": region,
                "version": (status.get(region) or {}).get("model_version"),
                "job": STATUS_TITLES.get(current.status, current.status) if current else "",
                "url": _page_url(region, access),
            }
        )
    return out


@router.get("/model", response_class=HTMLResponse, summary="Модели регионов и переобучения")
def model_page(request: Request, msg: str = "", region: str = "") -> Response:
    session = gate(request)
    if isinstance(session, Response):
        return session
    access = access_of(request, session)
    chosen = _chosen(access, region or None)
    if chosen is None:
        return message(
            request,
            session,
            "Нет регионов",
            "Ваша учётная запись не работает ни в одном регионе этого развёртывания.",
            403,
        )
    model = region_model(request, chosen)
    serving = request.app.state.regions.peek(chosen)
    slot = serving.slot if serving is not None else None
    manifest = model.manifest if model is not None else {}
    data = manifest.get("data") or {}
    found = stores(request)
    jobs = found.retrain_jobs if found is not None else None
    admin_jobs = jobs if session.is_admin else None
    runs = (
        [run_row(r) for r in admin_jobs.runs.recent(10, regions=(chosen,))]
        if admin_jobs is not None
        else []
    )
    state, waiting = _live_state(request, chosen)
    several = len(access.served) > 1
    return render(
        request,
        "model.html",
        {
            "model": model,
            "region": chosen if several else "",
            "retrain_region": chosen,
            "regions": _overview(request, access, jobs) if several else [],
            "version": model.version if model is not None else "",
            "load_error": (slot.error if slot is not None else None) or "",
            "created_at": manifest.get("created_at"),
            "loaded_at": slot.loaded_at if slot is not None else None,
            "data_sha": data.get("sha256") or "",
            "data_rows": data.get("rows"),
            "decision_reasons": _decision_reasons(manifest),
            "metric_names": [title for _, title in _METRICS],
            "tables": _metric_tables(manifest.get("metrics") or {}),
            "runs": runs,
            "jobs": jobs,
            "busy": bool(jobs is not None and jobs.current(chosen) is not None),
            "live_state": state,
            "waiting": waiting,
            "state_url": _page_url(chosen, access, "/state"),
            "poll_seconds": POLL_SECONDS,
            "notice": _NOTICES.get(msg, ""),
            "per_operator": (
                daily_counts(
                    found.corrections.engine,
                    days=7,
                    regions=(chosen,),
                    default_region=access.default,
                )
                if found is not None
                else []
            ),
        },
        session=session,
    )


@router.get("/model/state", summary="Состояние переобучения (для самообновления страницы)")
def model_state(request: Request, region: str = "") -> Response:
    """What the model page polls while a retrain is under way: it reloads when `state`
    differs from the one it was rendered with."""
    session = gate(request)
    if isinstance(session, Response):
        return session
    chosen = _chosen(access_of(request, session), region or None)
    state, waiting = _live_state(request, chosen) if chosen is not None else ("", False)
    return JSONResponse({"state": state, "waiting": waiting}, headers={"Cache-Control": "no-store"})


@router.post("/model/retrain", summary="Запустить переобучение модели региона (администратор)")
def retrain(
    request: Request, csrf: Annotated[str, Form()] = "", region: Annotated[str, Form()] = ""
) -> Response:
    session = gate(request, admin=True)
    if isinstance(session, Response):
        return session
    if not session.csrf_ok(csrf):
        return message(
            request, session, "Форма устарела", "Форма устарела. Откройте страницу ещё раз.", 403
        )
    access = access_of(request, session)
    wanted = region or access.default
    if wanted not in access.regions:  # not served, or not the person's
        return message(
            request,
            session,
            "Нет доступа",
            f"Переобучать модель региона «{wanted[:32]}» вы не можете: это не ваш регион.",
            403,
        )
    found = stores(request)
    if found is None or found.retrain_jobs is None:
        return not_ready(request, session)
    run = found.retrain_jobs.start("console", region=wanted)
    return redirect(_page_url(wanted, access, msg="started" if run is not None else "busy"))
