"""Tables of `quality.py`: per-profile figures, the issue's targets, clean vs social, review."""

from __future__ import annotations

from typing import Any

from _common import HEADS, table

#: The issue's targets per profile: (head, metric) → minimum. Social: within 0.02 of text.
TARGETS: dict[str, dict[tuple[str, str], float]] = {
    "text": {
        ("category", "accuracy"): 0.945,
        ("reason", "accuracy"): 0.76,
        ("urgency", "accuracy_likeliest"): 0.85,
        ("urgency", "recall_high"): 0.90,
        ("urgency", "precision_high"): 0.70,
    },
    "portal": {
        ("category", "accuracy"): 0.964,
        ("reason", "accuracy"): 0.875,
        ("urgency", "accuracy_likeliest"): 0.925,
        ("urgency", "recall_high"): 0.95,
        ("urgency", "precision_high"): 0.70,
        ("agency", "accuracy"): 0.83,
    },
}
TARGETS["geo"] = {**TARGETS["text"], ("agency", "accuracy"): 0.75}
SOCIAL_GAP = 0.02
#: What "beats the baseline" compares, per head.
COMPARED = {
    "category": ("accuracy",),
    "reason": ("accuracy",),
    "urgency": ("accuracy_likeliest", "recall_high"),
    "agency": ("accuracy",),
}


def _fig(res: dict, head: str, metric: str) -> float | None:
    return (res.get(head) or {}).get(metric)


def profile_table(name: str, by_contender: dict[str, dict], n: int) -> str:
    header = ["", "category", "reason", "urgency top-1", "high R / P", "agency", "macro-F1 r/a"]
    rows = []
    for contender, res in by_contender.items():
        recall, precision = (
            _fig(res, "urgency", "recall_high"),
            _fig(res, "urgency", "precision_high"),
        )
        rows.append(
            [
                contender,
                _fig(res, "category", "accuracy"),
                _fig(res, "reason", "accuracy"),
                _fig(res, "urgency", "accuracy_likeliest"),
                f"{recall:.3f} / {precision:.3f}" if recall is not None else None,
                _fig(res, "agency", "accuracy"),
                f"{_fig(res, 'reason', 'macro_f1'):.3f} / {_fig(res, 'agency', 'macro_f1'):.3f}",
            ]
        )
    return table(header, rows, title=f"== profile {name} (dev, n={n:,}; accuracy) ==")


def target_table(ours: dict[str, dict], results: dict[str, Any]) -> tuple[str, dict]:
    rows, verdict = [], {}

    def add(profile: str, what: str, goal: str, value: float, met: bool) -> None:
        verdict[f"{profile}.{what}"] = {"goal": goal, "value": value, "met": bool(met)}
        rows.append([profile, what, goal, value, "met" if met else "NOT met"])

    for profile, goals in TARGETS.items():
        for (head, metric), goal in goals.items():
            value = _fig(ours[profile], head, metric)
            add(profile, f"{head} {metric}", f"≥ {goal:.3f}", value, value >= goal)
    for head in HEADS:
        metric = "accuracy_likeliest" if head == "urgency" else "accuracy"
        clean, styled = _fig(ours["text"], head, metric), _fig(ours["social"], head, metric)
        gap = round(clean - styled, 4)
        add("social", f"{head} {metric} gap", f"≤ {SOCIAL_GAP}", gap, gap <= SOCIAL_GAP)
    for profile in ours:
        for contender, res in results.items():
            if contender.startswith("ours"):
                continue
            base = res["profiles"][profile]
            for head, metrics in COMPARED.items():
                for metric in metrics:
                    mine, theirs = _fig(ours[profile], head, metric), _fig(base, head, metric)
                    if theirs is None:
                        continue
                    add(
                        profile,
                        f"{head} {metric} vs {contender}",
                        f"> {theirs:.3f}",
                        mine,
                        mine > theirs,
                    )
    header = ["profile", "target", "goal", "ours", ""]
    return table(header, rows, title="== the issue's targets =="), verdict


def delta_table(ours: dict[str, dict]) -> str:
    rows = []
    for head in HEADS:
        metric = "accuracy_likeliest" if head == "urgency" else "accuracy"
        clean, styled = _fig(ours["text"], head, metric), _fig(ours["social"], head, metric)
        rows.append([head, clean, styled, f"{styled - clean:+.3f}"])
    return table(
        ["head", "text (clean)", "social style", "change"],
        rows,
        title="== ours: clean text vs the same texts written as social posts ==",
    )


def curve_tables(curves: dict[str, dict]) -> str:
    blocks = []
    for profile, curve in curves.items():
        rows = [[p["threshold"], p["coverage"], p["accuracy"]] for p in curve["points"]]
        blocks.append(
            table(
                ["reason confidence ≥", "coverage", "reason accuracy"],
                rows,
                title=(
                    f"-- {profile}: needs_review rate {curve['needs_review_rate']:.3f}, "
                    f"reason accuracy of the appeals routed without review "
                    f"{curve['routed_reason_accuracy']} --"
                ),
            )
        )
    return "== ours: coverage / accuracy behind needs_review ==\n" + "\n\n".join(blocks)
