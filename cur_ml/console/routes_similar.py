"""Bulk accept of near-identical appeals: the group is shown first, then accepted in one go.

The group of an appeal is the pending appeals of its region with the same normalised text,
or whose lemma sets reach `CUR_ML_NEAR_DUPLICATE_SIMILARITY` (Jaccard), that nobody else holds. Each
appeal is accepted with its own labels as they are now (an acceptance per field not yet
settled, by the signed-in operator); those whose labels differ from the lead appeal's are
left unticked. All of it is one transaction, refused whole (409) when any appeal changed
since the group was shown.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.exc import OperationalError

from cur_ml.console.context import QueueContext
from cur_ml.console.team import acting, claims, follow_of, parse_version
from cur_ml.console.web import (
    HEADS,
    access_of,
    find_appeal,
    gate,
    message,
    redirect,
    render,
    settings_of,
)
from cur_ml.errors import StaleVersionError, StoreBusyError
from cur_ml.store.corrections import CorrectionIn, effective_labels
from cur_ml.store.review_progress import histories, pending_texts, progress_of
from cur_ml.text.duplicates import near_duplicates

__all__ = ["router"]

router = APIRouter()

#: Pending appeals compared with the lead (the newest ones).
_CANDIDATES = 2_000
#: Most appeals one group shows and accepts.
_GROUP = 100
_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _member(record: Any, history: list, follow: Any, similarity: float, same: bool) -> dict:
    verdict = progress_of(record, history, follow)
    text = str((record.appeal or {}).get("text") or "")
    return {
        "id": record.prediction_id,
        "href": f"/console/appeals/{quote(record.prediction_id)}",
        "text": text if len(text) <= 220 else text[:217].rstrip() + "…",
        "district": record.district or "",
        "labels": effective_labels(record, history),
        "open": [h for h in HEADS if h not in verdict.settled],
        "done": verdict.done,
        "version": max((r.id for r in history), default=0),
        "similarity": similarity,
        "same": same,
    }


def _group(request: Request, found: Any, record: Any, me: str, region: str) -> list[dict]:
    """The lead appeal, then its near-identical pending appeals of its `region`, the most
    similar first."""
    settings = settings_of(request)
    threshold = settings.near_duplicate_similarity
    engine = found.corrections.engine
    texts = pending_texts(engine, _CANDIDATES, (region,), settings.default_region)
    texts.pop(record.prediction_id, None)
    taken = claims(request, found).held_by_others(list(texts), me)
    candidates = {pid: t for pid, t in texts.items() if pid not in taken}
    lead_text = str((record.appeal or {}).get("text") or "")
    matches = near_duplicates(lead_text, candidates, threshold)[: _GROUP - 1]
    ids = [record.prediction_id, *(m.key for m in matches)]
    stored = {pid: found.predictions.get(pid) for pid in ids}
    history = histories(engine, ids)
    follow = follow_of(request, region)
    members = [_member(record, history[record.prediction_id], follow, 1.0, True)]
    members += [
        _member(stored[m.key], history[m.key], follow, m.similarity, m.same_text)
        for m in matches
        if stored.get(m.key) is not None
    ]
    lead = members[0]["labels"]
    for m in members:
        m["differs"] = [h for h in HEADS if m["labels"][h] != lead[h]]
    return members


def _page(
    request: Request,
    session: Any,
    found: Any,
    record: Any,
    ctx: str,
    *,
    notice: str = "",
    conflict: list | None = None,
    status: int = 200,
) -> HTMLResponse:
    region = access_of(request, session).region_of(record.region)
    members = _group(request, found, record, acting(session).name, region)
    return render(
        request,
        "similar.html",
        {
            "record": record,
            "members": members,
            "threshold": request.app.state.settings.near_duplicate_similarity,
            "card_url": f"/console/appeals/{quote(record.prediction_id)}"
            + (f"?{ctx}" if ctx else ""),
            "action_url": f"/console/appeals/{quote(record.prediction_id)}/similar",
            "ctx": ctx,
            "key": secrets.token_urlsafe(18),
            "notice": notice,
            "conflict": conflict or [],
        },
        session=session,
        status=status,
    )


@router.get(
    "/appeals/{prediction_id}/similar",
    response_class=HTMLResponse,
    summary="Похожие обращения",
)
def similar(request: Request, prediction_id: str, done: int = -1) -> Response:
    session = gate(request)
    if isinstance(session, Response):
        return session
    appeal = find_appeal(request, session, prediction_id)
    if isinstance(appeal, Response):
        return appeal
    found, record = appeal
    notice = f"Принято обращений: {done}." if done >= 0 else ""
    ctx = QueueContext.from_params(request.query_params).query(page=False)
    return _page(request, session, found, record, ctx, notice=notice)


@router.post(
    "/appeals/{prediction_id}/similar",
    response_class=HTMLResponse,
    summary="Принять похожие обращения разом",
)
def accept_group(
    request: Request,
    prediction_id: str,
    csrf: Annotated[str, Form()] = "",
    key: Annotated[str, Form()] = "",
    ctx: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
    ids: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    versions: Annotated[list[str], Form()] = [],  # noqa: B006
) -> Response:
    """Accept every ticked appeal (`ids`) at its labels now; `versions`: `id:version` of each
    appeal as the group page showed it."""
    session = gate(request)
    if isinstance(session, Response):
        return session
    if not session.csrf_ok(csrf) or not _KEY.fullmatch(key):
        return message(
            request, session, "Форма устарела", "Форма устарела. Откройте группу ещё раз.", 403
        )
    appeal = find_appeal(request, session, prediction_id)
    if isinstance(appeal, Response):
        return appeal
    found, record = appeal
    ctx = QueueContext.from_string(ctx).query(page=False)
    me = acting(session)
    seen = dict(v.rpartition(":")[::2] for v in versions[: 2 * _GROUP])
    chosen = [v[:64] for v in ids][:_GROUP]
    taken = claims(request, found).held_by_others(chosen, me.name)
    chosen = [pid for pid in dict.fromkeys(chosen) if pid not in taken]
    history = histories(found.corrections.engine, chosen)
    access = access_of(request, session)
    region = access.region_of(record.region)
    follow = follow_of(request, region)
    note = " ".join(comment.split())[:2000] or None
    items, accepted = [], []
    for n, pid in enumerate(chosen):
        member = found.predictions.get(pid)
        if member is None or access.region_of(member.region) != region:
            continue  # only the lead appeal's region: its labels, its operators
        accepted.append(pid)
        settled = progress_of(member, history[pid], follow).settled
        current = effective_labels(member, history[pid])
        items += [
            CorrectionIn(
                field=head,
                new_value=current[head],
                old_value=current[head],
                operator=me.name,
                prediction_id=pid,
                appeal_id=member.appeal_id,
                comment=note,
                idempotency_key=f"{key}:{n}:{head}",
                source="console",
                base_version=parse_version(seen.get(pid, "")),
            )
            for head in HEADS
            if head not in settled
        ]
    try:
        found.corrections.add(items, follow=follow)
    except StaleVersionError as exc:
        return _page(request, session, found, record, ctx, conflict=exc.changes, status=409)
    except (OperationalError, StoreBusyError):
        return message(
            request, session, "Хранилище недоступно", "Не сохранено: повторите через минуту.", 503
        )
    for pid in accepted:
        claims(request, found).release(pid, me.name)
    url = f"/console/appeals/{quote(record.prediction_id)}/similar?done={len(accepted)}"
    return redirect(url + (f"&{ctx}" if ctx else ""))
