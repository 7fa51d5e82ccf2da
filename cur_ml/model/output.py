"""HeadScores → prediction records (plain dicts, the shape of the CONTRACT).

Everything that is arithmetic is done on the batch's matrices at once: top-3 by
`argpartition`, labels indexed once, review flags as boolean columns. What is
left per appeal is assembling its dict from ready-made Python values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from cur_ml.data import Columns
from cur_ml.model.classifier import AppealClassifier, HeadScores
from cur_ml.model.review import ReviewPolicy, text_issues

__all__ = ["build_predictions", "due_at"]

#: Place notes that a person should see before the appeal is routed.
_PLACE_ISSUES = {"district_contradicts_point": "place_contradicts_point"}
_TOP = 3
_ORDER = ("category", "reason", "urgency", "agency")


def due_at(created_at: str, deadline_days: int, now: datetime | None = None) -> str:
    """Deadline as ISO 8601: `created_at` (or now when absent/unparseable) + deadline days."""
    try:
        base = datetime.fromisoformat(created_at)
    except (TypeError, ValueError):
        base = (now or datetime.now(UTC)).replace(microsecond=0)
    return (base + timedelta(days=int(deadline_days))).isoformat()


def _top(proba: np.ndarray, k: int = _TOP) -> tuple[np.ndarray, np.ndarray]:
    """Column indexes of each row's `k` largest values, largest first, and those values."""
    k = min(k, proba.shape[1])
    if proba.shape[1] > k:
        part = np.argpartition(-proba, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(k), proba.shape).copy()
    values = np.take_along_axis(proba, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)


def _alternatives(labels: np.ndarray, top: np.ndarray, values: np.ndarray) -> list[list[dict]]:
    names, confs = labels[top].tolist(), np.round(values, 4).tolist()
    return [
        [{"label": a, "confidence": c} for a, c in zip(row_n, row_c)]  # noqa: B905 (same shape)
        for row_n, row_c in zip(names, confs)  # noqa: B905
    ]


def _runner_up(top: np.ndarray, values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The best rounded top-3 confidence that is not the chosen label (0 if none)."""
    others = np.where(top == chosen[:, None], -np.inf, np.round(values, 4))
    best = others.max(axis=1, initial=-np.inf)
    return np.where(np.isfinite(best), best, 0.0)


class _Heads:
    """Chosen label, its confidence, alternatives and review flags of every head, per row."""

    def __init__(self, n: int) -> None:
        self.labels: dict[str, list[str]] = {}
        self.confidence: dict[str, list[float]] = {}
        self.alternatives: dict[str, list[list[dict]]] = {}
        self.flags: list[tuple[str, np.ndarray]] = []
        self.n = n

    def add(self, head: str, labels, confidence, alternatives) -> None:
        self.labels[head], self.confidence[head], self.alternatives[head] = (
            labels,
            confidence,
            alternatives,
        )

    def review(self, policy: ReviewPolicy, head: str, top1: np.ndarray, top2: np.ndarray) -> None:
        self.flags.append((f"low_confidence:{head}", top1 < policy.threshold(head)))
        self.flags.append((f"small_margin:{head}", top1 - top2 < policy.min_margin))

    def flag(self, reason: str, rows: np.ndarray) -> None:
        self.flags.append((reason, rows))


def _topic(model: AppealClassifier, scores: HeadScores, policy: ReviewPolicy, out: _Heads):
    tax, n = model.taxonomy_, out.n
    rows = np.arange(n)
    reason = scores.decoded["reason"]
    reason_names = scores.labels["reason"][reason]
    category_index = {c: i for i, c in enumerate(scores.labels["category"])}
    chosen = {
        "reason": reason,
        "category": np.array([category_index[tax.category_of[r]] for r in reason_names], int),
        "urgency": scores.decoded["urgency"],
    }
    for head in ("category", "reason", "urgency"):
        labels, proba = scores.labels[head], scores.proba[head]
        top, values = _top(proba)
        p_chosen = proba[rows, chosen[head]]
        out.add(
            head,
            labels[chosen[head]].tolist(),
            np.round(p_chosen, 4).tolist(),
            _alternatives(labels, top, values),
        )
        if head != "urgency":  # urgency is a cost-weighted decision, not the likeliest label
            out.review(policy, head, p_chosen, _runner_up(top, values, chosen[head]))


def _agency(model: AppealClassifier, scores: HeadScores, policy: ReviewPolicy, out: _Heads):
    """Fill agency roles with the district. Without a place, a district role is spread over
    the districts by how likely the text is about each (a best guess, never a certainty)."""
    tax, roles, proba = model.taxonomy_, scores.labels["agency"], scores.proba["agency"]
    districts = [p.district for p in scores.places]
    names = np.empty((out.n, _TOP), dtype=object)
    values = np.zeros((out.n, _TOP))
    placed = np.array([bool(d) for d in districts], dtype=bool)
    if placed.any():
        rows = np.flatnonzero(placed)
        top, top_values = _top(proba[rows])
        cache: dict[tuple[int, str], str] = {}
        for r, picks in zip(rows.tolist(), top.tolist(), strict=True):
            d = districts[r]
            for j, role in enumerate(picks):
                key = (role, d)
                if key not in cache:
                    cache[key] = tax.agency_of(roles[role], d)
                names[r, j] = cache[key]
        values[rows, : top.shape[1]] = top_values
    if not placed.all():
        rows = np.flatnonzero(~placed)
        slotted, filled = _district_roles(model, roles, scores.labels["district"])
        p_role, p_district = proba[rows], scores.proba["district"][rows]
        joint = np.concatenate(
            [
                p_role[:, ~slotted],
                (p_role[:, slotted][:, :, None] * p_district[:, None, :]).reshape(len(rows), -1),
            ],
            axis=1,
        )
        top, top_values = _top(joint)
        names[rows, : top.shape[1]] = filled[top]
        values[rows, : top.shape[1]] = top_values
    rounded = np.round(values, 4)
    out.add(
        "agency",
        names[:, 0].tolist(),
        rounded[:, 0].tolist(),
        [
            [{"label": a, "confidence": c} for a, c in zip(nrow, crow, strict=True) if a]
            for nrow, crow in zip(names.tolist(), rounded.tolist(), strict=True)
        ],
    )
    # As before the vectorised path: the rounded confidence against the exact runner-up.
    out.review(policy, "agency", rounded[:, 0], values[:, 1])


def _district_roles(
    model: AppealClassifier, roles: np.ndarray, districts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which roles need a district, and the agency names of the columns of the joint
    (free roles, then every slotted role × district), computed once per model."""
    cached = model.serving_cache.get("district_roles")
    if cached is None:
        tax = model.taxonomy_
        slotted = np.array([tax.agency_of(r, "") is None for r in roles])
        filled = [str(r) for r in roles[~slotted]] + [
            tax.agency_of(r, d) for r in roles[slotted] for d in districts
        ]
        cached = model.serving_cache["district_roles"] = (slotted, np.array(filled, dtype=object))
    return cached


def _deadlines(model: AppealClassifier, scores: HeadScores, urgency: list[str]) -> list[int]:
    """The reason's deadline; when the urgency was raised to `high`, that of the likeliest
    acute reason, so that `due_at` matches the urgency the routing service acts on."""
    tax = model.taxonomy_
    labels = scores.labels["reason"]
    reasons = labels[scores.decoded["reason"]].tolist()
    days = [tax.deadline_of[r] for r in reasons]
    for i, (reason, level) in enumerate(zip(reasons, urgency, strict=True)):
        if level == "high" and tax.urgency_of[reason] != "high":
            order = np.argsort(-scores.proba["reason"][i])
            acute = [j for j in order if tax.urgency_of[labels[j]] == "high"]
            if acute:
                days[i] = min(days[i], tax.deadline_of[labels[acute[0]]])
    return days


def build_predictions(
    model: AppealClassifier,
    frame: Columns,
    scores: HeadScores,
    policy: ReviewPolicy,
    model_version: str,
) -> list[dict]:
    """One dict per appeal, in input order."""
    tax = model.taxonomy_
    n = len(frame["text"])
    heads = _Heads(n)
    _topic(model, scores, policy, heads)
    _agency(model, scores, policy, heads)
    places = scores.places
    issues: list[list[str]] = [[] for _ in range(n)]
    for reason, rows in heads.flags:
        for i in np.flatnonzero(rows).tolist():
            issues[i].append(reason)
    reasons, agencies = heads.labels["reason"], heads.labels["agency"]
    words = np.diff(scores.ids.indptr).tolist()
    roles: dict[tuple[str, str], str] = {}
    for i, (raw_district, place) in enumerate(zip(frame["district"], places, strict=True)):
        found = issues[i]
        if raw_district and raw_district not in tax.districts:
            found.append("unknown_district")
        if not place.district:
            found.append("place_unknown")
        found += [_PLACE_ISSUES[n] for n in place.notes if n in _PLACE_ISSUES]
        key = (agencies[i], place.district)
        if key not in roles:
            roles[key] = tax.role_of(*key)
        if (reasons[i], roles[key]) not in model.seen_reason_roles_:
            found.append("heads_disagree")
        found += text_issues(frame["text"][i], words[i], policy.min_words)
    deadlines = _deadlines(model, scores, heads.labels["urgency"])
    labels, conf, alts = heads.labels, heads.confidence, heads.alternatives
    columns = zip(
        frame["id"],
        frame["created_at"],
        places,
        deadlines,
        issues,
        *(labels[h] for h in _ORDER),
        *(conf[h] for h in _ORDER),
        *(alts[h] for h in _ORDER),
        strict=True,
    )
    out = []
    for rid, created, place, days, found, c, r, u, a, cc, cr, cu, ca, ac, ar, au, aa in columns:
        if isinstance(rid, float) and rid != rid:  # NaN from a table: no id
            rid = None
        out.append(
            {
                "id": rid,
                "category": c,
                "reason": r,
                "urgency": u,
                "agency": a,
                "confidence": {"category": cc, "reason": cr, "urgency": cu, "agency": ca},
                "alternatives": {"category": ac, "reason": ar, "urgency": au, "agency": aa},
                "deadline_days": days,
                "due_at": due_at(created, days),
                "place": place.as_dict(),
                "needs_review": bool(found),
                "review_reasons": sorted(set(found)),
                "model_version": model_version,
            }
        )
    return out
