"""The four-head appeal classifier: one fitted object that training evaluates and the API serves.

Design
------
* One calibrated head scores the fine `reason` from the text and the object type
  (the portal's menu); `category` and `urgency` are its marginals, so the topic
  heads never contradict each other.
* A message without the menu (social posts, comments) does not pretend to have
  one: a small text-only head predicts the object type, and the reason is
  integrated over its three likeliest values, P(r | text) = Σ P(r | text, o) P(o | text).
* The place comes from the fields, else from a point or an address typed in the
  text (`PlaceResolver`). The agency head scores the agency *role*
  ("СПб ГКУ ЖА {district} района", ...) from the text, the place, the object type
  and the decoded reason × district; the district fills the role in. It is fitted
  with place and object hidden on part of the rows, so their absence is common.
* Urgency is a decision at an operating point on P(high) that weighs a missed
  acute appeal above a false alarm; review thresholds come from the
  coverage/accuracy curve. Both are chosen on the newest rows, held out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.utils.validation import check_is_fitted

from cur_ml.data import Columns, appeal_columns, take
from cur_ml.model.buildings import BuildingIndex
from cur_ml.model.calibration import fit_temperature
from cur_ml.model.features import AppealFeaturizer, slug
from cur_ml.model.heads import LinearHead
from cur_ml.model.ngrams import LemmaIds, TokenVocabulary, hstack, take_rows
from cur_ml.model.operating import review_threshold, urgency_threshold
from cur_ml.model.place import Place, PlaceResolver
from cur_ml.model.review import ReviewPolicy
from cur_ml.model.taxonomy import Taxonomy
from cur_ml.text.engine import TokenStream

__all__ = ["HEADS", "AppealClassifier", "HeadScores"]

HEADS = ("category", "reason", "urgency", "agency")
Progress = Callable[[str], None]


class HeadScores:
    """Probabilities of every head for a batch: `labels[head]` and `proba[head]` (rows × labels).

    `decoded` holds the chosen index per row for `reason` and `urgency`; `places`
    the resolved place of each row; `objects` the object type each row was read with;
    `has_form` whether the row came with the portal's object type; `stream` the kept
    tokens of every text and `ids` their lemma ids (two for a two-word lemma).
    """

    def __init__(
        self,
        labels: dict[str, np.ndarray],
        proba: dict[str, np.ndarray],
        decoded: dict[str, np.ndarray],
        places: list[Place],
        objects: list[str],
        has_form: np.ndarray,
        stream: TokenStream,
        ids: LemmaIds,
    ) -> None:
        self.labels, self.proba, self.decoded = labels, proba, decoded
        self.places, self.objects, self.has_form = places, objects, has_form
        self.stream, self.ids = stream, ids

    @property
    def lemmas(self) -> list[str]:
        """Space-joined lemmas of each text."""
        return self.stream.strings()


def _indicator(keys: np.ndarray, mapping: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Columns = distinct mapped values; M[i, j] = 1 when keys[i] maps to value j."""
    values = np.array(sorted({mapping[k] for k in keys}))
    col = {v: j for j, v in enumerate(values)}
    m = np.zeros((len(keys), len(values)), dtype=np.float64)
    m[np.arange(len(keys)), [col[mapping[k]] for k in keys]] = 1.0
    return values, m


def _recency_weights(created_at: pd.Series, half_life_days: float | None) -> np.ndarray | None:
    """Newer appeals weigh more: routing rules drift month to month."""
    if not half_life_days:
        return None
    when = pd.to_datetime(created_at, errors="coerce", format="mixed")
    if when.isna().all():
        return None
    age = (when.max() - when).dt.total_seconds().fillna(0).to_numpy() / 86400.0
    return np.power(0.5, age / half_life_days)


def _sharpen(p: np.ndarray, temperature: float) -> np.ndarray:
    """Re-temper a probability matrix: p^(1/T), renormalised per row."""
    return softmax(np.log(np.clip(p, 1e-12, 1.0)) / temperature, axis=1)


class AppealClassifier(BaseEstimator):
    """Predicts category, reason, urgency and agency of an appeal with calibrated probabilities.

    Parameters
    ----------
    reason_C, agency_C, object_C, district_C : regularisation of the linear heads (the
        district a text is about is a weak signal: strongly regularised, and fast to fit).
    agency_half_life_days : recency weighting of the agency head (None: off).
    calibration_share : newest share of the training rows held out to fit the
        temperatures and operating points before the final fit on all rows.
    min_df : passed to :class:`AppealFeaturizer`.
    char_weight : weight of the character n-gram block (0: lemma n-grams only); it
        carries misspelt and unknown words.
    field_dropout : share of training rows whose place the agency head for messages
        without the portal form does not see (a bare text has none).
    object_top_k : object types integrated over when an appeal has none.
    high_miss_cost : cost of a missed `high` appeal, in false alarms.
    review_accuracy : accuracy the appeals routed without review should reach.
    """

    def __init__(
        self,
        reason_C: float = 0.3,
        agency_C: float = 0.3,
        object_C: float = 0.3,
        district_C: float = 0.05,
        agency_half_life_days: float | None = 80.0,
        calibration_share: float = 0.15,
        min_df: int = 2,
        char_weight: float = 1.0,
        field_dropout: float = 0.3,
        object_top_k: int = 3,
        high_miss_cost: float = 4.0,
        review_accuracy: float = 0.9,
        random_state: int = 0,
    ) -> None:
        self.reason_C = reason_C
        self.agency_C = agency_C
        self.object_C = object_C
        self.district_C = district_C
        self.agency_half_life_days = agency_half_life_days
        self.calibration_share = calibration_share
        self.min_df = min_df
        self.char_weight = char_weight
        self.field_dropout = field_dropout
        self.object_top_k = object_top_k
        self.high_miss_cost = high_miss_cost
        self.review_accuracy = review_accuracy
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        frame: pd.DataFrame,
        sample_weight: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> AppealClassifier:
        """Fit on a frame with input columns and the labels category/reason/urgency/agency."""
        step = progress or (lambda _msg: None)
        frame = frame.reset_index(drop=True)
        self.taxonomy_ = tax = Taxonomy.from_labels(frame)
        cols = appeal_columns(frame)
        step("features")
        self.featurizer_ = AppealFeaturizer(min_df=self.min_df, char_weight=self.char_weight)
        lemmas = _lemmatize(cols["text"])
        W = self.featurizer_.fit_text(cols, lemmas=lemmas)
        self.place_resolver_ = PlaceResolver().fit(cols)
        self.buildings_ = BuildingIndex().fit(cols["lat"], cols["lon"], cols["address"])
        # Training rows are in the index themselves: each must find another appeal there.
        building = self._building_evidence(cols, own=True)
        self.building_likelihood_ = _building_likelihood(
            building, cols["city_object"], self.featurizer_.objects_
        )
        X = self.featurizer_.with_object(W, lemmas, cols["city_object"])
        roles = np.array(
            [tax.role_of(a, d) for a, d in zip(frame["agency"], frame["district"], strict=True)]
        )
        reasons = frame["reason"].to_numpy()
        objects = np.array(cols["city_object"], dtype=object)
        base_w = np.ones(len(frame)) if sample_weight is None else np.asarray(sample_weight, float)
        recency = _recency_weights(frame["created_at"], self.agency_half_life_days)
        agency_w = base_w if recency is None else base_w * recency
        self._set_maps()
        self.roles_ = sorted(set(roles))
        hide = np.random.default_rng(self.random_state).random(len(frame)) < self.field_dropout
        cols = {**cols, "building": building}
        data = (W, X, lemmas, reasons, roles, objects, cols, hide, base_w, agency_w)

        n_cal = int(len(frame) * self.calibration_share)
        fitted = n_cal >= 30
        if fitted:
            order = np.argsort(
                pd.to_datetime(frame["created_at"], errors="coerce", format="mixed")
                .fillna(pd.Timestamp(0))
                .to_numpy(),
                kind="stable",
            )
            fit_idx, cal_idx = np.sort(order[:-n_cal]), np.sort(order[-n_cal:])
            step("calibration fit")
            # liblinear lets go of the GIL: the final fit runs beside the calibration fit.
            with ThreadPoolExecutor(max_workers=1) as pool:
                final = pool.submit(self._fit_heads, *data)
                vars(self).update(self._fit_heads(*_rows(data, fit_idx)))
                step("calibrate")
                settings = self._calibrate(take(cols, cal_idx), reasons[cal_idx], roles[cal_idx])
                step("final fit")
                vars(self).update(final.result())
        else:
            step("final fit")
            vars(self).update(self._fit_heads(*data))
        if fitted:
            for head, temperature in settings["temperatures"].items():
                getattr(self, f"{head}_head_").temperature_ = temperature
            self.text_temperature_ = settings["text_temperature"]
            self.high_threshold_ = settings["high_threshold"]
            self.review_policy_ = settings["review_policy"]
        else:
            self.text_temperature_ = 1.0
            bayes = 1.0 / (1.0 + self.high_miss_cost)  # right for calibrated probabilities
            self.high_threshold_ = {"form": bayes, "text": bayes}
            self.review_policy_ = ReviewPolicy()
        self.seen_reason_roles_ = set(zip(reasons, roles, strict=True))
        return self

    def _set_maps(self) -> None:
        tax = self.taxonomy_
        reasons = np.array(tax.reasons)
        self.categories_, self.reason_to_category_ = _indicator(reasons, tax.category_of)
        self.urgencies_, self.reason_to_urgency_ = _indicator(reasons, tax.urgency_of)
        self.high_index_ = (
            int(np.flatnonzero(self.urgencies_ == "high")[0]) if ("high" in self.urgencies_) else -1
        )

    def _fit_side(self, W, objects, cols) -> dict[str, LinearHead]:
        """The small text-only heads: object type, and the district a text is about."""
        has_object = np.array([bool(o) for o in objects])
        obj = LinearHead(C=self.object_C).fit(
            W[has_object], objects[has_object], classes=self.featurizer_.objects_
        )
        # Which district a text without any place is likely about (street names, landmarks):
        # agency's best guess when no place is found, never a place of its own.
        districts = np.array(cols["district"], dtype=object)
        has_district = districts != ""
        district = LinearHead(C=self.district_C).fit(
            self._words(W)[has_district], districts[has_district], classes=self.taxonomy_.districts
        )
        return {"object_head_": obj, "district_head_": district}

    def _fit_heads(
        self, W, X, lemmas, reasons, roles, objects, cols, hide, reason_w, agency_w
    ) -> dict[str, object]:
        """Fit the heads on these rows; returns them (as attributes to set), changes nothing.

        Pure, so that the calibration fit and the final fit can run side by side.
        """
        # Every reason of the taxonomy, even one only the calibration rows have.
        reason = LinearHead(C=self.reason_C).fit(
            X, reasons, sample_weight=reason_w, classes=self.taxonomy_.reasons
        )
        small = self._fit_side(W, objects, cols)
        obj = small["object_head_"]
        # In-sample decoded reasons: as useful as out-of-fold ones here, at a third of the cost.
        decoded = self._decode_reason(reason.predict_proba(X))
        # Messages without the portal form get a head of their own: their place is
        # given, found from a point or a typed address, or absent (hidden on some rows).
        free = _without_form(cols, hidden_place=hide)
        free["object_guess"] = list(obj.classes_[obj.predict_proba(W).argmax(axis=1)])
        meta = CountVectorizer(
            token_pattern=r"\S+", lowercase=False, binary=True, dtype=np.float32
        ).fit([" ".join(t) for seen in (cols, free) for t in self._agency_tokens(decoded, seen)])
        heads = {"agency_head_": cols, "free_agency_head_": free}
        return {
            "reason_head_": reason,
            **small,
            "agency_meta_": meta,
            **{
                name: LinearHead(C=self.agency_C).fit(
                    self._agency_features(W, decoded, seen, meta),
                    roles,
                    sample_weight=agency_w,
                    classes=self.roles_,
                )
                for name, seen in heads.items()
            },
        }

    def _calibrate(self, cal: Columns, reasons: np.ndarray, roles: np.ndarray) -> dict:
        """Temperatures, the urgency threshold and review thresholds, on held-out rows."""
        lemmas = _lemmatize(cal["text"])
        W = self.featurizer_.text(lemmas, cal["text"])
        X = self.featurizer_.with_object(W, lemmas, cal["city_object"])
        self.reason_head_.calibrate(X, reasons)
        self.object_head_.calibrate(W, np.array(cal["city_object"], dtype=object))
        self.district_head_.calibrate(self._words(W), np.array(cal["district"], dtype=object))
        self.text_temperature_ = 1.0
        # The same rows once as portal forms and once as bare texts: the operating points
        # must hold for both kinds of source.
        bare = _without_form(cal, hidden_place=np.ones(len(reasons), dtype=bool))
        p_bare, bare_objects = self._reason_proba(W, lemmas, bare["city_object"], bare["building"])
        index = {c: i for i, c in enumerate(self.reason_head_.classes_)}
        self.text_temperature_ = fit_temperature(
            np.log(np.clip(p_bare, 1e-12, 1.0)), np.array([index.get(r, -1) for r in reasons])
        )
        form = self._score_lemmas(cal, lemmas, W)
        self.agency_head_.calibrate(self._agency_features(W, form["decoded"], cal), roles)
        free = {**_without_form(cal), "object_guess": bare_objects}
        self.free_agency_head_.calibrate(self._agency_features(W, form["decoded"], free), roles)
        both = [form, self._score_lemmas(bare, lemmas, W)]
        is_high = np.array([self.taxonomy_.urgency_of.get(r) == "high" for r in reasons])
        # One operating point per kind of input: a form is scored more sharply than a bare text.
        thresholds = {
            kind: urgency_threshold(s["urgency"][:, self.high_index_], is_high, self.high_miss_cost)
            for kind, s in zip(("form", "text"), both, strict=True)
        }
        truth = {"reason": np.concatenate([reasons, reasons])}
        truth["category"] = np.array(
            [self.taxonomy_.category_of.get(r, "") for r in truth["reason"]]
        )
        review = {}
        for head in ("category", "reason"):
            labels = self.categories_ if head == "category" else self.reason_head_.classes_
            p = np.concatenate([s[head] for s in both])
            review[head] = review_threshold(
                p.max(axis=1), labels[p.argmax(axis=1)] == truth[head], self.review_accuracy
            )
        p_role = self.agency_head_.predict_proba(self._agency_features(W, form["decoded"], cal))
        review["agency"] = review_threshold(
            p_role.max(axis=1),
            self.agency_head_.classes_[p_role.argmax(axis=1)] == roles,
            self.review_accuracy,
        )
        return {
            "temperatures": {
                "reason": self.reason_head_.temperature_,
                "object": self.object_head_.temperature_,
                "district": self.district_head_.temperature_,
                "agency": self.agency_head_.temperature_,
                "free_agency": self.free_agency_head_.temperature_,
            },
            "text_temperature": self.text_temperature_,
            "high_threshold": thresholds,
            "review_policy": ReviewPolicy(min_confidence=tuple(review.items()), min_margin=0.0),
        }

    @property
    def serving_cache(self) -> dict:
        """Values derived from the fitted model at serving time (per process, never saved)."""
        cache = self.__dict__.get("_serving_cache")
        if cache is None:
            cache = self.__dict__["_serving_cache"] = {}
        return cache

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_serving_cache", None)
        return state

    # -------------------------------------------------------------- predict
    def _decode_reason(self, p_reason: np.ndarray) -> np.ndarray:
        """Category by its marginal, then the best reason inside it (never contradictory)."""
        best_cat = (p_reason @ self.reason_to_category_).argmax(axis=1)
        member = self.reason_to_category_[:, best_cat].T.astype(bool)
        return np.where(member, p_reason, -1.0).argmax(axis=1)

    def _reason_proba(
        self,
        W: sp.csr_matrix,
        lemmas: Sequence[str] | LemmaIds,
        objects: list[str],
        building: list[bool],
    ) -> tuple[np.ndarray, list[str]]:
        """P(reason), and the object type each row was read with (given, else the likeliest).

        Rows without a known object type integrate it out over its `object_top_k` likeliest values.
        """
        ids = self.featurizer_.encode(lemmas)
        known = set(self.featurizer_.objects_)
        given = np.array([o in known for o in objects])
        p = np.zeros((W.shape[0], len(self.reason_head_.classes_)))
        chosen = [o if o in known else "" for o in objects]
        if given.any():
            rows = np.flatnonzero(given)
            X = self.featurizer_.with_object(
                take_rows(W, rows), ids.take(rows), [objects[i] for i in rows]
            )
            p[rows] = self.reason_head_.predict_proba(X)
        if not given.all():
            rows = np.flatnonzero(~given)
            Wb, lem = take_rows(W, rows), ids.take(rows)
            p_obj = self._object_proba(Wb, [building[i] for i in rows])
            k = min(self.object_top_k, p_obj.shape[1])
            top = np.argpartition(-p_obj, k - 1, axis=1)[:, :k]
            mix = np.zeros((len(rows), p.shape[1]))
            names = self.object_head_.classes_
            for j in range(k):
                objs = names[top[:, j]]
                X = self.featurizer_.with_object(Wb, lem, list(objs))
                weight = p_obj[np.arange(len(rows)), top[:, j]][:, None]
                mix += weight * self.reason_head_.predict_proba(X)
            p[rows] = _sharpen(mix / mix.sum(axis=1, keepdims=True), self.text_temperature_)
            best = names[p_obj.argmax(axis=1)]
            for i, r in enumerate(rows):
                chosen[r] = str(best[i])
        return p, chosen

    def _building_evidence(self, frame: Columns, own: bool = False) -> list[bool | None]:
        """Per row: on a known building (True), a point elsewhere (False), no point (None)."""
        on = self.buildings_.on_building(
            frame["lat"], frame["lon"], frame["address"] if own else None
        )
        return [
            bool(b) if math.isfinite(la) and math.isfinite(lo) else None
            for b, la, lo in zip(on, frame["lat"], frame["lon"], strict=True)
        ]

    def _object_proba(self, W: sp.csr_matrix, building: list[bool | None]) -> np.ndarray:
        """P(object | text), updated by the point where there is one (naive Bayes: whether
        the point is on a known building, given the object type). No point, no update."""
        p = self.object_head_.predict_proba(W)
        has_point = np.array([b is not None for b in building], dtype=bool)
        if has_point.any():
            flag = np.array([bool(b) for b in building], dtype=int)[has_point]
            updated = p[has_point] * self.building_likelihood_[flag]
            total = updated.sum(axis=1, keepdims=True)
            # Evidence the training rows never showed tells nothing: keep the text's view.
            informative = total > 0
            p[has_point] = np.where(
                informative, updated / np.where(informative, total, 1), p[has_point]
            )
        return p

    def _agency_tokens(self, reason_index: np.ndarray, frame: Columns) -> list[list[str]]:
        out: list[list[str]] = []
        guesses, buildings = frame.get("object_guess"), frame.get("building")
        for r, d, m, a, o in zip(
            reason_index,
            frame["district"],
            frame["municipality"],
            frame["address"],
            frame["city_object"],
            strict=True,
        ):
            parts = [f"r={r}"]
            if not o and guesses is not None:
                # The object type the text suggests (a guess, so a token of its own).
                parts.append(f"objp={slug(guesses[len(out)])}")
            if d:
                parts += [f"dist={slug(d)}", f"rd={r}|{slug(d)}"]
            if buildings is not None and buildings[len(out)]:
                parts.append("bldg=1")
            if m:
                parts.append(f"muni={slug(m)}")
            if o:
                # An empty address means "not a building" only on a form that has the field.
                parts += [f"obj={slug(o)}", f"addr={int(bool(a))}"]
            elif a:
                parts.append("addr=1")
            out.append(parts)
        return out

    def _agency_features(self, W, reason_index, frame, meta=None, words=None) -> sp.csr_matrix:
        """Lemma n-grams (character n-grams cost more than they give the agency head), and
        the place, object and decoded reason tokens. `words`: the lemma n-grams, if at hand."""
        meta = meta if meta is not None else self.agency_meta_
        return hstack(
            [
                self._words(W) if words is None else words,
                TokenVocabulary(meta).transform(self._agency_tokens(reason_index, frame)),
            ]
        )

    def _words(self, W: sp.csr_matrix) -> sp.csr_matrix:
        """The lemma n-grams of the text block: character n-grams cost the place and agency
        heads more than they give them."""
        return W[:, : self.featurizer_.n_word_features_] if self.char_weight else W

    def _score_lemmas(
        self, frame: Columns, lemmas: Sequence[str] | LemmaIds, W: sp.csr_matrix
    ) -> dict:
        p_reason, objects = self._reason_proba(W, lemmas, frame["city_object"], frame["building"])
        decoded = self._decode_reason(p_reason)
        return {
            "reason": p_reason,
            "decoded": decoded,
            "category": p_reason @ self.reason_to_category_,
            "urgency": p_reason @ self.reason_to_urgency_,
            "objects": objects,
        }

    def decide_urgency(
        self, p_urgency: np.ndarray, reason_index: np.ndarray, has_form: np.ndarray
    ) -> np.ndarray:
        """The decoded reason's urgency, raised to `high` when P(high) reaches the operating
        point of the row's kind (a portal form or a bare text).

        Only the raise may contradict the reason: a missed acute appeal costs more than a
        false alarm, and an acute reason is never lowered.
        """
        implied = self.reason_to_urgency_[reason_index].argmax(axis=1)
        if self.high_index_ < 0:
            return implied
        threshold = np.where(has_form, self.high_threshold_["form"], self.high_threshold_["text"])
        raise_ = p_urgency[:, self.high_index_] >= threshold
        return np.where(raise_, self.high_index_, implied)

    def score(self, frame: Columns | pd.DataFrame) -> HeadScores:
        """Probabilities of every head for a batch of appeals (see `appeal_columns`), with
        the batch's tokens (explanations reuse them)."""
        check_is_fitted(self, "agency_head_")
        if isinstance(frame, pd.DataFrame):
            frame = appeal_columns(frame)
        places = self.place_resolver_.resolve(frame)
        known = set(self.featurizer_.objects_)
        frame = {
            **frame,
            # An object type the form never offers is no object type.
            "city_object": [o if o in known else "" for o in frame["city_object"]],
            "district": [p.district for p in places],
            "municipality": [p.municipality for p in places],
            "building": self._building_evidence(frame),
        }
        stream = self.featurizer_.preprocessor_.stream(frame["text"])
        ids = self.featurizer_.encode_stream(stream)
        words, W = self.featurizer_.text_blocks(ids, frame["text"])
        topic = self._score_lemmas(frame, ids, W)
        frame = {**frame, "object_guess": topic["objects"]}
        features = self._agency_features(W, topic["decoded"], frame, words=words)
        has_form = np.array([bool(o) for o in frame["city_object"]], dtype=bool)
        p_role = np.empty((W.shape[0], len(self.roles_)))
        for head, rows in ((self.agency_head_, has_form), (self.free_agency_head_, ~has_form)):
            if rows.any():
                p_role[rows] = head.predict_proba(take_rows(features, np.flatnonzero(rows)))
        # Rows with no place at all: which district the text is likely about (zeros elsewhere).
        p_district = np.zeros((W.shape[0], len(self.district_head_.classes_)))
        unplaced = np.array([not p.district for p in places], dtype=bool)
        if unplaced.any():
            p_district[unplaced] = self.district_head_.predict_proba(
                take_rows(words, np.flatnonzero(unplaced))
            )
        return HeadScores(
            labels={
                "reason": self.reason_head_.classes_,
                "category": self.categories_,
                "urgency": self.urgencies_,
                "agency": self.agency_head_.classes_,
                "district": self.district_head_.classes_,
            },
            proba={
                "reason": topic["reason"],
                "category": topic["category"],
                "urgency": topic["urgency"],
                "agency": p_role,
                "district": p_district,
            },
            decoded={
                "reason": topic["decoded"],
                "urgency": self.decide_urgency(topic["urgency"], topic["decoded"], has_form),
            },
            places=places,
            objects=topic["objects"],
            has_form=has_form,
            stream=stream,
            ids=ids,
        )


def _without_form(cols: Columns, hidden_place: np.ndarray | None = None) -> Columns:
    """The appeals as a post without the portal form would carry them (and, where
    `hidden_place` says so, without a place either)."""
    n = len(cols["text"])
    hidden = np.zeros(n, dtype=bool) if hidden_place is None else hidden_place
    return {
        **cols,
        "city_object": [""] * n,
        "address": [""] * n,
        "district": ["" if h else d for h, d in zip(hidden, cols["district"], strict=True)],
        "municipality": ["" if h else m for h, m in zip(hidden, cols["municipality"], strict=True)],
        "building": [None if h else b for h, b in zip(hidden, cols["building"], strict=True)],
    }


def _building_likelihood(
    building: list[bool | None], objects: list[str], names: list[str]
) -> np.ndarray:
    """Rows (point elsewhere, point on a building) × object type: P(evidence | object) /
    P(evidence), smoothed, from the training rows that have a point and an object type."""
    pairs = [(b, o) for b, o in zip(building, objects, strict=True) if b is not None and o]
    out = np.ones((2, len(names)))
    if not pairs:
        return out
    flags = np.array([b for b, _ in pairs], dtype=int)
    column = {n: j for j, n in enumerate(names)}
    objs = np.array([column.get(o, -1) for _, o in pairs])
    for b in (0, 1):
        prior = (flags == b).mean()
        if prior == 0:  # never seen in training: no update (a zero would wipe every object)
            continue
        for j in range(len(names)):
            rows = objs == j
            out[b, j] = ((flags[rows] == b).sum() + prior) / (rows.sum() + 1) / max(prior, 1e-9)
    return out


def _lemmatize(texts: list[str]) -> list[str]:
    from cur_ml.text import RussianPreprocessor

    return RussianPreprocessor().fit([]).transform(texts)


def _rows(data: tuple, index: np.ndarray) -> tuple:
    """The training arrays of `data` restricted to rows `index` (same order as _fit_heads)."""
    W, X, lemmas, reasons, roles, objects, cols, hide, base_w, agency_w = data
    return (
        W[index],
        X[index],
        [lemmas[i] for i in index],
        reasons[index],
        roles[index],
        objects[index],
        take(cols, index),
        hide[index],
        base_w[index],
        agency_w[index],
    )
