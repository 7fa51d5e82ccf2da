"""HeadScores → prediction records (plain dicts, the shape of the CONTRACT)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from cur_ml.data import Columns
from cur_ml.model.classifier import HEADS, AppealClassifier, HeadScores
from cur_ml.model.review import ReviewPolicy, text_issues

__all__ = ["build_predictions", "due_at"]

#: Place notes that a person should see before the appeal is routed.
_PLACE_ISSUES = {"district_contradicts_point": "place_contradicts_point"}


def due_at(created_at: str, deadline_days: int, now: datetime | None = None) -> str:
    """Deadline as ISO 8601: `created_at` (or now when absent/unparseable) + deadline days."""
    try:
        base = datetime.fromisoformat(created_at)
    except (TypeError, ValueError):
        base = (now or datetime.now(UTC)).replace(microsecond=0)
    return (base + timedelta(days=int(deadline_days))).isoformat()


def _top3(labels: np.ndarray, row: np.ndarray) -> list[dict]:
    best = np.argsort(-row)[:3]
    return [{"label": str(labels[i]), "confidence": round(float(row[i]), 4)} for i in best]


def _deadline(model: AppealClassifier, reason: str, urgency: str, p_reason: np.ndarray) -> int:
    """The reason's deadline; when the urgency was raised to `high`, that of the likeliest
    acute reason, so that `due_at` matches the urgency the routing service acts on."""
    tax = model.taxonomy_
    days = tax.deadline_of[reason]
    if urgency == "high" and tax.urgency_of[reason] != "high":
        labels = model.reason_head_.classes_
        acute = [i for i in np.argsort(-p_reason) if tax.urgency_of[labels[i]] == "high"]
        if acute:
            days = min(days, tax.deadline_of[labels[acute[0]]])
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
    slotted = np.array([tax.agency_of(r, "") is None for r in scores.labels["agency"]])
    out = []
    for i, (text, raw_district, created) in enumerate(
        zip(frame["text"], frame["district"], frame["created_at"], strict=True)
    ):
        reason = str(scores.labels["reason"][scores.decoded["reason"][i]])
        place = scores.places[i]
        chosen = {
            "reason": reason,
            "category": tax.category_of[reason],
            "urgency": str(scores.labels["urgency"][scores.decoded["urgency"][i]]),
        }
        alternatives, confidence, issues = {}, {}, []
        for head in ("category", "reason", "urgency"):
            labels, row = scores.labels[head], scores.proba[head][i]
            top = _top3(labels, row)
            alternatives[head] = top
            p_chosen = float(row[list(labels).index(chosen[head])])
            confidence[head] = round(p_chosen, 4)
            runner_up = max(
                (t["confidence"] for t in top if t["label"] != chosen[head]), default=0.0
            )
            if head != "urgency":  # urgency is a cost-weighted decision, not the likeliest label
                issues += policy.head_issues(head, p_chosen, runner_up)
        agency, agency_alts, p_agency, runner = _agency(model, scores, i, place.district, slotted)
        chosen["agency"], alternatives["agency"], confidence["agency"] = (
            agency,
            agency_alts,
            p_agency,
        )
        issues += policy.head_issues("agency", p_agency, runner)
        if raw_district and raw_district not in tax.districts:
            issues.append("unknown_district")
        if not place.district:
            issues.append("place_unknown")
        issues += [_PLACE_ISSUES[n] for n in place.notes if n in _PLACE_ISSUES]
        role = tax.role_of(agency, place.district)
        if (reason, role) not in model.seen_reason_roles_:
            issues.append("heads_disagree")
        issues += text_issues(text, scores.lemmas[i], policy.min_words)
        deadline = _deadline(model, reason, chosen["urgency"], scores.proba["reason"][i])
        out.append(
            {
                "id": frame["id"][i],
                **{h: chosen[h] for h in HEADS},
                "confidence": confidence,
                "alternatives": alternatives,
                "deadline_days": deadline,
                "due_at": due_at(created, deadline),
                "place": place.as_dict(),
                "needs_review": bool(issues),
                "review_reasons": sorted(set(issues)),
            }
        )
    return out


def _agency(
    model: AppealClassifier, scores: HeadScores, i: int, district: str, slotted: np.ndarray
):
    """Fill agency roles with the district. Without a place, a district role is spread over
    the districts by how likely the text is about each (a best guess, never a certainty).

    `slotted` marks the roles that need a district.
    """
    tax, roles, row = model.taxonomy_, scores.labels["agency"], scores.proba["agency"][i]
    if district:
        names = [tax.agency_of(r, district) for r in roles]
        order = np.argsort(-row)
        top = [(names[j], float(row[j])) for j in order[:3]]
    else:
        districts, p_district = scores.labels["district"], scores.proba["district"][i]
        free, slot = np.flatnonzero(~slotted), np.flatnonzero(slotted)
        joint = np.concatenate([row[free], np.outer(row[slot], p_district).ravel()])
        order = np.argsort(-joint)[:3]

        def name(k: int) -> str:
            if k < len(free):
                return str(roles[free[k]])
            r, d = divmod(k - len(free), len(districts))
            return tax.agency_of(roles[slot[r]], districts[d])

        top = [(name(k), float(joint[k])) for k in order]
    alternatives = [{"label": a, "confidence": round(p, 4)} for a, p in top]
    runner = top[1][1] if len(top) > 1 else 0.0
    return top[0][0], alternatives, round(top[0][1], 4), runner
