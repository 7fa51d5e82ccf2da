"""An appeal's card: its text with the deciding words marked, the four decisions, corrections.

Accepting a decision stores a correction with the same value; the appeal leaves the queue
once every field that needed review is accepted or corrected. Every form carries the
session's CSRF token, its own idempotency key (a double submission stores one correction)
and the version of the labels the page showed: a save over someone's newer change is
refused (409) with what changed. Opening the card claims the appeal for its operator.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.exc import OperationalError

from cur_ml.console.context import QueueContext
from cur_ml.console.highlight import highlight, span_groups
from cur_ml.console.label_search import find_labels
from cur_ml.console.review_view import derived_notice, review_view
from cur_ml.console.session import ConsoleSession
from cur_ml.console.team import acting, claims, follow_of, parse_version
from cur_ml.console.web import (
    HEAD_TITLES,
    HEADS,
    URGENCY_TITLES,
    Stores,
    access_of,
    find_appeal,
    gate,
    message,
    redirect,
    region_model,
    render,
    settings_of,
)
from cur_ml.errors import IdempotencyKeyReusedError, StaleVersionError, StoreBusyError
from cur_ml.store.claiming import Hold
from cur_ml.store.corrections import CorrectionIn, effective_labels
from cur_ml.store.review_progress import done_ids, live_rows

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()

_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
_APPEAL_FIELDS = (
    ("id", "Номер у источника"),
    ("created_at", "Написано"),
    ("source", "Источник"),
    ("district", "Район"),
    ("municipality", "Муниципалитет"),
    ("address", "Адрес"),
    ("city_object", "Объект"),
)
_URGENCY_CODES = {title: code for code, title in URGENCY_TITLES.items()}


def _labels(request: Request, region: str) -> dict[str, list[str]]:
    """Label sets of the region's model (empty while it has none loaded)."""
    model = region_model(request, region)
    if model is None:
        return {}
    labels = model.manifest.get("labels") or model.label_sets()
    return {head: [str(v) for v in labels.get(head, [])] for head in HEADS}


def _region(request: Request, session: ConsoleSession, record: Any) -> str:
    """The appeal's region (one recorded before regions: the default region)."""
    return access_of(request, session).region_of(record.region)


def _allowed(head: str, record: Any, labels: dict[str, list[str]]) -> set[str]:
    known = set(labels.get(head) or [])
    known.add(str(getattr(record, head)))
    for alt in ((record.prediction or {}).get("alternatives") or {}).get(head) or []:
        known.add(str(alt.get("label")))
    return known


def _latest(history: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in history:  # id order: the last one wins
        out[item.field] = item
    return out


def _heads(record: Any, history: list[Any], labels: dict[str, list[str]]) -> list[dict]:
    prediction = record.prediction or {}
    confidence = prediction.get("confidence") or {}
    alternatives = prediction.get("alternatives") or {}
    explanation = prediction.get("explanation") or {}
    latest = _latest(history)
    out = []
    for head in HEADS:
        predicted = str(getattr(record, head))
        corrected = latest.get(head)
        current = corrected.new_value if corrected is not None else predicted
        alts = [
            {"n": n, "label": str(a.get("label")), "confidence": a.get("confidence")}
            for n, a in enumerate((alternatives.get(head) or [])[:3], start=1)
        ]
        words = [
            {"text": w.get("text", ""), "weight": w.get("weight")}
            for w in explanation.get(head) or []
            if isinstance(w, dict)
        ]
        options = labels.get(head) or []
        if head == "urgency":
            options = [URGENCY_TITLES.get(v, v) for v in options]
        out.append(
            {
                "head": head,
                "title": HEAD_TITLES[head],
                "predicted": predicted,
                "confidence": confidence.get(head),
                "current": current,
                "corrected": corrected,
                "alternatives": alts,
                "words": words,
                "options": options,
            }
        )
    return out


def _store(
    request: Request,
    session: ConsoleSession,
    found: Stores,
    items: list[CorrectionIn],
    record: Any,
    ctx: QueueContext,
) -> Response | None:
    """Store corrections as the API does (a changed reason moves category and urgency with
    it; then maybe an automatic retrain); a page on failure: the card as it is now with what
    changed when the page was based on an older version (409)."""
    follow = follow_of(request, _region(request, session, record))
    try:
        stored = found.corrections.add(items, follow=follow).items
    except StaleVersionError as exc:
        return _card(request, session, found, record, ctx, conflict=exc.changes, status=409)
    except IdempotencyKeyReusedError:
        return message(
            request,
            session,
            "Форма уже отправлена",
            "Эта форма уже сохранила другое значение. Откройте обращение ещё раз.",
            409,
        )
    except (OperationalError, StoreBusyError):
        log.exception("console: corrections could not be stored")
        return message(
            request, session, "Хранилище недоступно", "Не сохранено: повторите через минуту.", 503
        )
    if any(new for _, new in stored) and found.retrain_jobs is not None:
        try:
            found.retrain_jobs.maybe_start_auto()
        except Exception:  # never fails the correction, as in the API
            log.exception("automatic retrain could not be started")
    if done_ids(found.corrections.engine, [record.prediction_id]):  # reviewed: let it go
        claims(request, found).release(record.prediction_id, acting(session).name)
    return None


def _resolve(field: str, typed: str, allowed: set[str]) -> tuple[str, str]:
    """The label an operator's text names (a part of a word, another form, other spacing
    will do when it names one label only), or the error that says what to do instead."""
    if typed in allowed:
        return typed, ""
    titles = {URGENCY_TITLES.get(v, v) if field == "urgency" else v: v for v in allowed}
    found = find_labels(typed, titles)
    if len(found) == 1:
        return titles[found[0]], ""
    title = HEAD_TITLES[field]
    if not found:
        return typed, f"{title}: «{typed[:200]}» нет среди меток модели; выберите из списка."
    shown = ", ".join(f"«{label}»" for label in found[:5]) + (", …" if len(found) > 5 else "")
    return typed, (
        f"{title}: «{typed[:200]}» подходит к {len(found)} меткам ({shown}); "
        "уточните или выберите из списка."
    )


def _focus(heads: list[dict]) -> str:
    """The head to focus first: the least confident one still to review (else the least
    confident one nobody has decided yet)."""
    open_heads = [h for h in heads if h["open"]] or [h for h in heads if h["corrected"] is None]
    if not open_heads:
        return ""
    return min(open_heads, key=lambda h: float(h["confidence"] or 0.0))["head"]


def _card(
    request: Request,
    session: ConsoleSession,
    found: Stores,
    record: Any,
    ctx: QueueContext,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
    conflict: list[Any] | None = None,
    hold: Hold | None = None,
) -> HTMLResponse:
    region = _region(request, session, record)
    history = found.corrections.query(prediction_id=record.prediction_id, limit=1000)
    review = review_view(record, history, follow_of(request, region))
    heads = _heads(record, live_rows(history), _labels(request, region))
    for h in heads:
        h["needed"] = h["head"] in review.verdict.needed
        h["open"] = h["head"] in review.verdict.missing
        h["derived"] = h["head"] in review.derived
    appeal = record.appeal or {}
    text = str(appeal.get("text") or "")
    groups = span_groups((record.prediction or {}).get("explanation"), text, HEADS)
    ctx_query = ctx.query(page=False)
    return render(
        request,
        "appeal.html",
        {
            "record": record,
            "prediction": record.prediction or {},
            "meta": [
                (title, appeal[k]) for k, title in _APPEAL_FIELDS if appeal.get(k) not in (None, "")
            ],
            "text_html": highlight(text, groups, HEAD_TITLES),
            "legend": [(g.css, ", ".join(HEAD_TITLES[h].lower() for h in g.heads)) for g in groups],
            "heads": heads,
            "focus": _focus(heads),
            "history": list(reversed(history)),
            "pending": bool(record.needs_review) and not review.verdict.done,
            "review": review,
            "version": review.version,
            "conflict": conflict or [],
            "reload_url": f"/console/appeals/{quote(record.prediction_id)}"
            + (f"?{ctx_query}" if ctx_query else ""),
            "similar_url": f"/console/appeals/{quote(record.prediction_id)}/similar"
            + (f"?{ctx_query}" if ctx_query else ""),
            "hold": hold if hold is not None and not hold.is_mine(acting(session).name) else None,
            "ctx": ctx_query,
            "queue_url": "/console/"
            + (f"?{ctx.query(page=False, pos=False)}" if ctx.active else ""),
            "next_url": f"/console/next?current={quote(record.prediction_id)}"
            + (f"&{ctx_query}" if ctx_query else ""),
            "new_key": lambda: secrets.token_urlsafe(18),
            "notice": notice,
            "error": error,
            # The region badge, where the deployment serves more than one.
            "region": region if len(settings_of(request).all_regions()) > 1 else "",
        },
        session=session,
        status=status,
    )


@router.get("/appeals/{prediction_id}", response_class=HTMLResponse, summary="Карточка обращения")
def appeal_card(request: Request, prediction_id: str, saved: str = "") -> Response:
    session = gate(request)
    if isinstance(session, Response):
        return session
    appeal = find_appeal(request, session, prediction_id)
    if isinstance(appeal, Response):
        return appeal
    found, record = appeal
    notice = f"{HEAD_TITLES[saved]}: исправление сохранено." if saved in HEAD_TITLES else ""
    if saved == "reason":
        history = found.corrections.query(prediction_id=record.prediction_id, limit=1000)
        notice = " ".join(filter(None, (notice, derived_notice(live_rows(history)))))
    who = acting(session)
    hold = claims(request, found).take(record.prediction_id, who.name, who.user_id)
    return _card(
        request,
        session,
        found,
        record,
        QueueContext.from_params(request.query_params),
        notice=notice,
        hold=hold,
    )


@router.post(
    "/appeals/{prediction_id}/corrections",
    response_class=HTMLResponse,
    summary="Принять или исправить решения модели",
)
def correct(
    request: Request,
    prediction_id: str,
    csrf: Annotated[str, Form()] = "",
    key: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "",
    field: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
    custom: Annotated[str, Form()] = "",
    ctx: Annotated[str, Form()] = "",
    base: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
) -> Response:
    session = gate(request)
    if isinstance(session, Response):
        return session
    if not session.csrf_ok(csrf) or not _KEY.fullmatch(key):
        return message(
            request,
            session,
            "Форма устарела",
            "Форма устарела или пришла не из консоли. Откройте обращение ещё раз.",
            403,
        )
    appeal = find_appeal(request, session, prediction_id)
    if isinstance(appeal, Response):
        return appeal
    found, record = appeal
    context = QueueContext.from_string(ctx)
    common = {
        "operator": acting(session).name,
        "prediction_id": record.prediction_id,
        "appeal_id": record.appeal_id,
        "source": "console",
        "comment": " ".join(comment.split())[:2000] or None,
        "base_version": parse_version(base),
    }
    history = found.corrections.query(prediction_id=record.prediction_id, limit=1000)
    latest = _latest(history)
    if action == "accept_all":
        # Every field nobody has settled yet, at the value it has now (a reason's followers
        # are settled by it).
        follow = follow_of(request, _region(request, session, record))
        settled = review_view(record, history, follow).verdict.settled
        current = effective_labels(record, history)
        items = [
            CorrectionIn(
                field=head,
                new_value=current[head],
                old_value=current[head],
                idempotency_key=f"{key}:{head}",
                **common,
            )
            for head in HEADS
            if head not in settled
        ]
        if (failed := _store(request, session, found, items, record, context)) is not None:
            return failed
        query = context.query(page=False)
        return redirect(
            f"/console/next?current={quote(record.prediction_id)}" + (f"&{query}" if query else "")
        )
    if action != "set" or field not in HEADS:
        return _card(
            request, session, found, record, context, error="Неизвестное действие.", status=422
        )
    chosen = (value or custom).strip()
    if field == "urgency":
        chosen = _URGENCY_CODES.get(chosen, chosen)
    if not chosen:
        error = f"{HEAD_TITLES[field]}: выберите значение из списка."
        return _card(request, session, found, record, context, error=error, status=422)
    labels = _labels(request, _region(request, session, record))
    chosen, error = _resolve(field, chosen, _allowed(field, record, labels))
    if error:
        return _card(request, session, found, record, context, error=error, status=422)
    before = latest[field].new_value if field in latest else str(getattr(record, field))
    item = CorrectionIn(
        field=field, new_value=chosen, old_value=before, idempotency_key=f"{key}:{field}", **common
    )
    if (failed := _store(request, session, found, [item], record, context)) is not None:
        return failed
    query = context.query(page=False)
    return redirect(
        f"/console/appeals/{quote(record.prediction_id)}?{query}{'&' if query else ''}saved={field}"
    )
