"""The promotion gate: challenger against champion on the same holdout, with paired tests.

A difference of two appeals on a small holdout is noise, not a regression; a real drop of
recall of `high` is never acceptable. Per head:

- accuracy: McNemar's exact test on the appeals one model gets right and the other wrong
  (`scipy.stats.binomtest` on the discordant pairs);
- macro-F1: a paired bootstrap interval of challenger − champion (`scipy.stats.bootstrap`,
  resampling appeals, seeded);
- recall of `high` (urgency): the same paired bootstrap interval, and the point estimate.

The challenger is promoted only if no head is significantly worse (p < alpha with a lower
accuracy, or an interval entirely below zero) and recall of `high` is not lower.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from cur_ml.model.classifier import HEADS

__all__ = ["Decision", "PairedTest", "decide", "macro_f1", "mcnemar", "paired_interval"]

_HEAD_RU = {
    "category": "категория",
    "reason": "причина",
    "urgency": "срочность",
    "agency": "ведомство",
}
_METRIC_EN = {"accuracy": "accuracy", "macro_f1": "macro-F1", "recall_high": "recall of high"}
_METRIC_RU = {"accuracy": "точность", "macro_f1": "macro-F1", "recall_high": "полнота high"}


@dataclass(frozen=True)
class PairedTest:
    """One metric of one head, both models on the same appeals."""

    head: str
    metric: str
    champion: float
    challenger: float
    #: `mcnemar_exact` (p_value) or `paired_bootstrap` (ci_low, ci_high of the difference).
    test: str
    n: int
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    #: Discordant pairs (McNemar): champion right and challenger wrong, and the reverse.
    champion_only: int | None = None
    challenger_only: int | None = None
    #: The verdict this test gives: the challenger is (significantly) worse here.
    worse: bool = False
    #: Confidence level of the interval.
    level: float = 0.95

    @property
    def delta(self) -> float:
        return self.challenger - self.champion

    def to_dict(self) -> dict:
        return {**asdict(self), "delta": round(self.delta, 6)}

    def _verdict(self, ru: bool) -> str:
        if self.metric == "recall_high":
            return (
                ("ниже" if self.worse else "не ниже")
                if ru
                else ("lower" if self.worse else "not lower")
            )
        if ru:
            return "значимо хуже" if self.worse else "значимого ухудшения нет"
        return "significantly worse" if self.worse else "not significantly worse"

    def reason_en(self) -> str:
        if self.test == "mcnemar_exact":
            evidence = (
                f"McNemar exact p={self.p_value:.3g}; {self.challenger_only} appeals right only "
                f"by the challenger, {self.champion_only} only by the champion"
            )
        else:
            evidence = (
                f"paired bootstrap {self.level:.0%} CI of the difference "
                f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}]"
            )
        return (
            f"{self.head} {_METRIC_EN[self.metric]} {self.challenger:.4f} vs champion "
            f"{self.champion:.4f} ({self.delta:+.4f}; {evidence}): {self._verdict(False)}"
        )

    def reason_ru(self) -> str:
        if self.test == "mcnemar_exact":
            evidence = (
                f"точный тест Мак-Немара p={self.p_value:.3g}; верно только у претендента "
                f"{self.challenger_only}, только у чемпиона {self.champion_only}"
            )
        else:
            evidence = (
                f"парный бутстреп, {self.level:.0%} ДИ разности "
                f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}]"
            )
        return (
            f"{_HEAD_RU[self.head]}: {_METRIC_RU[self.metric]} {self.challenger:.4f} против "
            f"{self.champion:.4f} у чемпиона ({self.delta:+.4f}; {evidence}): {self._verdict(True)}"
        )


@dataclass
class Decision:
    """Promote or not, why (in English and Russian), and every test behind it."""

    promote: bool
    reasons_en: list[str]
    reasons_ru: list[str]
    tests: list[PairedTest] = field(default_factory=list)
    n: int = 0
    alpha: float = 0.05

    def to_dict(self) -> dict:
        return {
            "promote": self.promote,
            "reasons_en": self.reasons_en,
            "reasons_ru": self.reasons_ru,
            "tests": [t.to_dict() for t in self.tests],
            "n": self.n,
            "alpha": self.alpha,
        }

    def tags(self) -> dict[str, str]:
        """Registry version tags: the decision, its reasons, every test's figures."""
        out = {
            "decision": "promoted" if self.promote else "rejected",
            "reasons_en": "\n".join(self.reasons_en)[:4900],
            "reasons_ru": "\n".join(self.reasons_ru)[:4900],
            "gate_holdout_rows": str(self.n),
            "gate_alpha": str(self.alpha),
        }
        for t in self.tests:
            key = f"gate_{t.head}_{t.metric}"
            out[f"{key}_champion"] = f"{t.champion:.6f}"
            out[f"{key}_challenger"] = f"{t.challenger:.6f}"
            if t.p_value is not None:
                out[f"{key}_p_value"] = f"{t.p_value:.6g}"
            if t.ci_low is not None:
                out[f"{key}_ci"] = f"[{t.ci_low:.6f}, {t.ci_high:.6f}]"
            out[f"{key}_worse"] = str(t.worse)
        return out


# ------------------------------------------------------------------------ statistics
def mcnemar(
    truth: np.ndarray, champion: np.ndarray, challenger: np.ndarray
) -> tuple[float, int, int]:
    """McNemar's exact test: (two-sided p, champion-only right, challenger-only right)."""
    old_ok, new_ok = champion == truth, challenger == truth
    b = int((old_ok & ~new_ok).sum())
    c = int((~old_ok & new_ok).sum())
    if b + c == 0:
        return 1.0, b, c
    return float(stats.binomtest(b, b + c, 0.5).pvalue), b, c


def _codes(*arrays: np.ndarray) -> tuple[list[np.ndarray], int]:
    """The label arrays as integer codes over their union (the bootstrap resamples numbers)."""
    codes, uniques = pd.factorize(np.concatenate([np.asarray(a, dtype=object) for a in arrays]))
    sizes = np.cumsum([0, *(len(a) for a in arrays)])
    return [codes[sizes[i] : sizes[i + 1]] for i in range(len(arrays))], len(uniques)


def _counts(values: np.ndarray, k: int) -> np.ndarray:
    """Per row of a (batch, n) array: how often each of `k` codes occurs, shape (batch, k)."""
    rows = np.arange(values.shape[0])[:, None] * k
    return np.bincount((values + rows).ravel(), minlength=values.shape[0] * k).reshape(-1, k)


def macro_f1(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 of every row of (batch, n) code arrays, as scikit-learn's `f1_score(...,
    average="macro")` computes it: over the labels present in the truth or the predictions.

    F1 of a label is 2·TP / (true + predicted), vectorised over the bootstrap's resamples.
    """
    truth, pred = np.atleast_2d(truth), np.atleast_2d(pred)
    hit = np.where(truth == pred, truth, k)  # code k: a miss, counted in no label
    tp = _counts(hit, k + 1)[:, :k]
    support = _counts(truth, k) + _counts(pred, k)
    present = support > 0
    f1 = np.divide(2 * tp, support, out=np.zeros(support.shape), where=present)
    return f1.sum(axis=1) / present.sum(axis=1)


def _recall(truth: np.ndarray, pred: np.ndarray, label: int) -> np.ndarray:
    truth, pred = np.atleast_2d(truth), np.atleast_2d(pred)
    positives = truth == label
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((pred == label) & positives).sum(axis=1) / positives.sum(axis=1)


def paired_interval(
    statistic, samples: tuple[np.ndarray, ...], *, resamples: int, seed: int, level: float
) -> tuple[float, float]:
    """Percentile interval of `statistic` under a paired bootstrap of the appeals."""
    result = stats.bootstrap(
        samples,
        lambda *s, axis=-1: statistic(*s),
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        batch=max(1, min(resamples, 4_000_000 // max(1, len(samples[0])))),
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high)


# ------------------------------------------------------------------------ decision
def decide(
    truth: Mapping[str, np.ndarray],
    champion: Mapping[str, np.ndarray] | None,
    challenger: Mapping[str, np.ndarray],
    *,
    alpha: float = 0.05,
    resamples: int = 1_000,
    seed: int = 0,
    heads: tuple[str, ...] = HEADS,
) -> Decision:
    """Judge `challenger` against `champion`: label arrays per head on the same appeals."""
    n = len(next(iter(truth.values())))
    if champion is None:
        return Decision(True, ["no champion yet"], ["чемпиона ещё нет"], [], n, alpha)
    tests: list[PairedTest] = []
    level = 1 - alpha
    for head in heads:
        y, old, new = (
            np.asarray(a, dtype=object) for a in (truth[head], champion[head], challenger[head])
        )
        p, b, c = mcnemar(y, old, new)
        acc_old, acc_new = float((old == y).mean()), float((new == y).mean())
        tests.append(
            PairedTest(
                head,
                "accuracy",
                acc_old,
                acc_new,
                "mcnemar_exact",
                n,
                p_value=p,
                champion_only=b,
                challenger_only=c,
                worse=p < alpha and acc_new < acc_old,
            )
        )
        (cy, cold, cnew), k = _codes(y, old, new)
        f1_old, f1_new = float(macro_f1(cy, cold, k)[0]), float(macro_f1(cy, cnew, k)[0])
        low, high = paired_interval(
            lambda t, a, b_, k=k: macro_f1(t, b_, k) - macro_f1(t, a, k),
            (cy, cold, cnew),
            resamples=resamples,
            seed=seed,
            level=level,
        )
        tests.append(
            PairedTest(
                head,
                "macro_f1",
                f1_old,
                f1_new,
                "paired_bootstrap",
                n,
                ci_low=low,
                ci_high=high,
                worse=high < 0,
                level=level,
            )
        )
        if head == "urgency":
            tests.extend(_recall_high(cy, cold, cnew, y, resamples, seed, level, n))
    worse = [t for t in tests if t.worse]
    if worse:
        head_en = (
            "rejected: "
            + "; ".join(f"{t.head} {_METRIC_EN[t.metric]}" for t in worse)
            + " worse than the champion"
        )
        head_ru = "отклонён: хуже чемпиона — " + "; ".join(
            f"{_HEAD_RU[t.head]} ({_METRIC_RU[t.metric]})" for t in worse
        )
    else:
        head_en = "promoted: no head significantly worse, recall of high not lower"
        head_ru = "принят: ни один показатель не стал значимо хуже, полнота high не ниже"
    return Decision(
        promote=not worse,
        reasons_en=[head_en, *(t.reason_en() for t in tests)],
        reasons_ru=[head_ru, *(t.reason_ru() for t in tests)],
        tests=tests,
        n=n,
        alpha=alpha,
    )


def _recall_high(cy, cold, cnew, y, resamples, seed, level, n) -> list[PairedTest]:
    """Recall of `high`: worse whenever the point estimate is lower (a missed acute appeal
    is the costly error); the interval says how sure that is. None without any `high`."""
    high = np.flatnonzero(y == "high")
    if high.size == 0:
        return []
    code = int(cy[high[0]])
    r_old, r_new = float(_recall(cy, cold, code)[0]), float(_recall(cy, cnew, code)[0])
    low, hi = paired_interval(
        lambda t, a, b: np.nan_to_num(_recall(t, b, code) - _recall(t, a, code)),
        (cy, cold, cnew),
        resamples=resamples,
        seed=seed,
        level=level,
    )
    return [
        PairedTest(
            "urgency",
            "recall_high",
            r_old,
            r_new,
            "paired_bootstrap",
            n,
            ci_low=low,
            ci_high=hi,
            worse=r_new < r_old,
            level=level,
        )
    ]
