"""Which words of the appeal pushed each decision, as character offsets into the original text.

For a linear head the push of a word on the chosen label is its weight for
that label times its idf (the per-text norm is common to all words, so the
ranking holds); bigrams split their weight between their two words and the
object-type crosses add to their word.

A batch is explained at once from the tokens and lemma ids its scoring already
made: every push is a gather from the weight matrix. Rows the vectorised path
cannot decide the same way (a two-word lemma, a tie at the cut-off) go through
the per-row path, which is the reference.
"""

from __future__ import annotations

from itertools import repeat

import numpy as np

from cur_ml.model.classifier import AppealClassifier, HeadScores
from cur_ml.model.features import slug
from cur_ml.text import Token

__all__ = ["explain_batch", "explain_heads"]

TOP = 5


def _token_pushes(
    model: AppealClassifier, lemmas: list[str], obj: str, weights: np.ndarray
) -> np.ndarray:
    feat = model.featurizer_
    text_vocab, text_idf = feat.text_.vocabulary_, feat.text_.idf_
    cross_vocab, cross_idf = feat.cross_.vocabulary_, feat.cross_.idf_
    offset = feat.n_text_features_
    obj_slug = slug(obj)
    push = np.zeros(len(lemmas))
    for i, lemma in enumerate(lemmas):
        j = text_vocab.get(lemma)
        if j is not None:
            push[i] += weights[j] * text_idf[j]
        if obj_slug and (j := cross_vocab.get(f"{obj_slug}|{lemma}")) is not None:
            push[i] += weights[offset + j] * cross_idf[j]
        if i + 1 < len(lemmas) and (j := text_vocab.get(f"{lemma} {lemmas[i + 1]}")) is not None:
            half = weights[j] * text_idf[j] / 2
            push[i] += half
            push[i + 1] += half
    return push


def _words(text: str, tokens: list[Token], push: np.ndarray, order) -> list[dict]:
    return [
        {
            "start": tokens[i].start,
            "end": tokens[i].end,
            "text": text[tokens[i].start : tokens[i].end],
            "weight": round(float(push[i]), 4),
        }
        for i in sorted(order, key=lambda i: tokens[i].start)
    ]


def explain_heads(
    model: AppealClassifier,
    appeal: dict,
    prediction: dict,
    top: int = TOP,
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
    out: dict[str, list[dict]] = {}
    for head, (linear, label, obj) in _heads(model, appeal, prediction).items():
        where = np.flatnonzero(linear.classes_ == label)
        if not len(where) or not tokens:
            out[head] = []
            continue
        push = _token_pushes(model, lemmas, obj, linear.weights_[:, where[0]])
        floor = 0.1 * push.max()  # words far weaker than the strongest one explain nothing
        order = [i for i in np.argsort(-push)[:top] if push[i] > 0 and push[i] >= floor]
        out[head] = _words(text, tokens, push, order)
    out["category"] = out["urgency"] = out["reason"]
    return out


def _heads(model: AppealClassifier, appeal: dict, prediction: dict) -> dict:
    """Head → (linear head, its label for this appeal, object type it reads crosses with)."""
    # The agency head has no object crosses: its features are [text | place and reason tokens].
    return {
        "reason": (model.reason_head_, prediction["reason"], appeal["city_object"]),
        "agency": (
            model.agency_head_ if appeal.get("has_form", True) else model.free_agency_head_,
            model.taxonomy_.role_of(prediction["agency"], appeal["district"]),
            "",
        ),
    }


def _batch_pushes(
    model: AppealClassifier,
    ids: np.ndarray,
    doc: np.ndarray,
    weights: np.ndarray,
    column: np.ndarray,
    objects: list[str] | None,
) -> np.ndarray:
    """`_token_pushes` of every token of a batch at once (same float operations, same order).

    `column[d]` is the weight column of text d's label; `objects[d]` its object type.
    """
    feat = model.featurizer_
    vocab = feat.lemma_vocabulary_
    text_idf, cross_idf = feat.text_.idf_, feat.cross_.idf_
    col = column[doc]
    uni = vocab.unigrams(ids)
    u = np.maximum(uni, 0)
    unigram = np.where(uni >= 0, weights[u, col] * text_idf[u], 0.0)
    cross = np.zeros(len(ids))
    if objects is not None:
        c = vocab.crosses(ids, doc, [slug(o) for o in objects])
        cc = np.maximum(c, 0)
        cross = np.where(c >= 0, weights[feat.n_text_features_ + cc, col] * cross_idf[cc], 0.0)
    half = np.zeros(len(ids))
    if len(ids) > 1:
        b = vocab.bigrams(ids, doc)
        bb = np.maximum(b, 0)
        half[:-1] = np.where(b >= 0, weights[bb, col[:-1]] * text_idf[bb] / 2, 0.0)
    push = np.zeros(len(ids))
    push[1:] += half[:-1]  # the bigram with the previous word was added first
    return push + unigram + cross + half


def _selected(push: np.ndarray, indptr: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text, its `top` strongest tokens that push towards the label and reach a tenth of
    its strongest; and the texts whose cut-off falls on a tie (decided per row)."""
    n_docs = len(indptr) - 1
    lengths = np.diff(indptr)
    doc = np.repeat(np.arange(n_docs), lengths)
    order = np.lexsort((-push, doc))
    rank = np.arange(len(push)) - indptr[:-1][doc[order]]
    strongest = np.full(n_docs, -np.inf)
    np.maximum.at(strongest, doc, push)
    floor = 0.1 * strongest
    # A tie between the last token in and the first one out: which one np.argsort keeps
    # is not positional, so those texts take the reference path.
    at_cut = order[rank == top - 1]
    after = order[rank == top]
    tie = np.zeros(n_docs, dtype=bool)
    has_after = lengths[doc[at_cut]] > top
    tie[doc[at_cut][has_after]] = push[at_cut][has_after] == push[after]
    chosen = order[rank < top]
    keep = (push[chosen] > 0) & (push[chosen] >= floor[doc[chosen]])
    return np.sort(chosen[keep]), tie


def explain_batch(
    model: AppealClassifier, texts: list[str], scores: HeadScores, predictions: list[dict]
) -> list[dict[str, list[dict]]]:
    """`explain_heads` of every appeal of a batch, from the batch's own tokens."""
    stream, n = scores.stream, len(texts)
    vocab = model.featurizer_.lemma_vocabulary_
    doc = np.repeat(np.arange(n), np.diff(stream.indptr))
    # One id per token (scores.ids split a two-word lemma in two; such rows go per row).
    ids = np.array(list(map(vocab.ids.get, stream.lemmas, repeat(-1))), dtype=np.int64)
    fallback = np.zeros(n, dtype=bool)
    if len(scores.ids.ids) != len(stream.lemmas):
        fallback[doc[[" " in lemma for lemma in stream.lemmas]]] = True
    tax = model.taxonomy_
    roles = [
        tax.role_of(p["agency"], place.district)
        for p, place in zip(predictions, scores.places, strict=True)
    ]
    per_head: dict[str, list[list[dict] | None]] = {}
    for head in ("reason", "agency"):
        rows: list[list[dict] | None] = [[] for _ in range(n)]
        if head == "reason":
            groups = [(model.reason_head_, np.ones(n, bool), scores.objects)]
            labels = [p["reason"] for p in predictions]
        else:
            form = scores.has_form
            groups = [(model.agency_head_, form, None), (model.free_agency_head_, ~form, None)]
            labels = roles
        for linear, member, objects in groups:
            if not member.any():
                continue
            index = {c: j for j, c in enumerate(linear.classes_)}
            column = np.array([index.get(lbl, -1) for lbl in labels], dtype=np.int64)
            take = member & (column >= 0)
            column = np.maximum(column, 0)
            push = _batch_pushes(model, ids, doc, linear.weights_, column, objects)
            chosen, tie = _selected(push, stream.indptr, TOP)
            fallback |= tie & take
            picked = np.split(chosen, np.searchsorted(doc[chosen], np.arange(1, n)))
            weights = np.round(push, 4)
            for i in np.flatnonzero(take).tolist():
                text = texts[i]
                rows[i] = [
                    _word(stream.token(j, text, i), text, weights[j]) for j in picked[i].tolist()
                ]
        per_head[head] = rows
    out = []
    for i in range(n):
        if fallback[i]:
            appeal = {
                "text": texts[i],
                "city_object": scores.objects[i],
                "district": scores.places[i].district,
                "has_form": bool(scores.has_form[i]),
            }
            span = range(stream.indptr[i], stream.indptr[i + 1])
            tokens = [stream.token(j, texts[i], i) for j in span]
            out.append(explain_heads(model, appeal, predictions[i], tokens=tokens))
            continue
        reason = per_head["reason"][i]
        agency = per_head["agency"][i]
        out.append({"reason": reason, "agency": agency, "category": reason, "urgency": reason})
    return out


def _word(token: Token, text: str, weight: float) -> dict:
    return {
        "start": token.start,
        "end": token.end,
        "text": text[token.start : token.end],
        "weight": float(weight),
    }
