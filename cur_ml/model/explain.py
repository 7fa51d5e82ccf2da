"""Which words of the appeal pushed each decision, as character offsets into the original text.

For a linear head the push of a word on the chosen label is its weight for
that label times its idf (the per-text norm is common to all words, so the
ranking holds); bigrams split their weight between their two words and the
object-type crosses add to their word.
"""

from __future__ import annotations

import numpy as np

from cur_ml.model.classifier import AppealClassifier
from cur_ml.text import Token

__all__ = ["explain_heads"]


def _token_pushes(
    model: AppealClassifier, lemmas: list[str], obj: str, weights: np.ndarray
) -> np.ndarray:
    feat = model.featurizer_
    text_vocab, text_idf = feat.text_.vocabulary_, feat.text_.idf_
    cross_vocab, cross_idf = feat.cross_.vocabulary_, feat.cross_.idf_
    offset = feat.n_text_features_
    slug = "_".join(obj.split())
    push = np.zeros(len(lemmas))
    for i, lemma in enumerate(lemmas):
        j = text_vocab.get(lemma)
        if j is not None:
            push[i] += weights[j] * text_idf[j]
        if slug and (j := cross_vocab.get(f"{slug}|{lemma}")) is not None:
            push[i] += weights[offset + j] * cross_idf[j]
        if i + 1 < len(lemmas) and (j := text_vocab.get(f"{lemma} {lemmas[i + 1]}")) is not None:
            half = weights[j] * text_idf[j] / 2
            push[i] += half
            push[i + 1] += half
    return push


def explain_heads(
    model: AppealClassifier,
    appeal: dict,
    prediction: dict,
    top: int = 5,
    tokens: list[Token] | None = None,
) -> dict[str, list[dict]]:
    """Per head, up to `top` words (start, end, text, weight) that pushed towards its label.

    Category and urgency follow from the reason, so they share the reason's words.
    `appeal` carries the object type and district the model read it with.
    """
    text = appeal["text"]
    if tokens is None:
        tokens = model.featurizer_.preprocessor_.analyze(text)
    lemmas = [t.lemma for t in tokens]
    tax = model.taxonomy_
    # The agency head has no object crosses: its features are [text | place and reason tokens].
    heads = {
        "reason": (model.reason_head_, prediction["reason"], appeal["city_object"]),
        "agency": (
            model.agency_head_ if appeal.get("has_form", True) else model.free_agency_head_,
            tax.role_of(prediction["agency"], appeal["district"]),
            "",
        ),
    }
    out: dict[str, list[dict]] = {}
    for head, (linear, label, obj) in heads.items():
        where = np.flatnonzero(linear.classes_ == label)
        if not len(where) or not tokens:
            out[head] = []
            continue
        push = _token_pushes(model, lemmas, obj, linear.weights_[:, where[0]])
        floor = 0.1 * push.max()  # words far weaker than the strongest one explain nothing
        order = [i for i in np.argsort(-push)[:top] if push[i] > 0 and push[i] >= floor]
        out[head] = [
            {
                "start": tokens[i].start,
                "end": tokens[i].end,
                "text": text[tokens[i].start : tokens[i].end],
                "weight": round(float(push[i]), 4),
            }
            for i in sorted(order, key=lambda i: tokens[i].start)
        ]
    out["category"] = out["urgency"] = out["reason"]
    return out
