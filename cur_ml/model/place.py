"""Where an appeal is: district and municipality from what the message carries.

Trust order per row: a district the portal gave → the map point (distance-weighted
kNN over training points) → an address typed in the text (a gazetteer built from
the training `address` column) → unknown. Junk values never raise: a coordinate
that is not a finite number is simply no coordinate.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from cur_ml.data import Columns, appeal_columns

__all__ = ["Place", "PlaceResolver", "street_key"]

KM_PER_DEGREE = 111.2  # one degree of latitude
_MARGIN_DEG = 0.05  # the region is the training bounding box plus this
_MAX_POINTS = 30_000  # enough for a city; keeps the pickled model small
_SOFTEN_KM = 0.05  # a neighbour at 0 m must not outvote all the others alone
_HOUSE_CONFIDENCE = 0.95
_STREET_CONFIDENCE = 0.9  # cap: a street alone was right 91% of the time on real dev data
_MIN_STREET_SHARE = 0.6
_CONTRADICTS = 0.8
_CHUNK = 4096  # rows per vote matrix: bounded memory on huge batches

_TYPES = frozenset(  # not "дорога", "территория": too common in appeals to mark a street
    "улица улицы улице улицу улицей ул проспект проспекта проспекте проспекту проспектом пр "
    "пр-т пр-та пр-те пр-кт пр-кта пр-кте просп переулок переулка переулке переулку пер "
    "набережная набережной набережную наб шоссе ш бульвар бульвара бульваре бульвару б-р бул "
    "площадь площади пл линия линии линию лин проезд проезда проезде пр-д аллея аллеи аллее "
    "тупик тупика тупике".split()
)
# Words that may stand between a street and its house number ("ул. Дыбенко, д. 5").
_FILLERS = frozenset("д дом дома доме домом во пс".split())
# Common words of appeals that are also one-word street names ("парадная 3", "больше 5 дней");
# as real streets they are ambiguous anyway (Малый пр. В.О. / П.С.).
_COMMON = frozenset("парадн больш мал средн нов детск центральн спортивн главн".split())
# After "г. Ломоносов, ..." comes a town, not a street.
_TOWN = frozenset("г гор город пос поселок".split())
_ABBREVIATIONS = {"б": "больш", "м": "мал", "ср": "средн"}  # "Б.Конюшенная"
_LINES = frozenset("линия линии линию лин".split())  # only they take a bare number: "11-я линия"
_ORDINAL = frozenset("я й ая яя ий ой ое го ей е ья ю ую ом м".split())
_ENDINGS = "ого его ому ему ыми ими ая яя ой ей ий ый ое ее ую юю ом ем ых их ым им".split()
_ENDINGS += list("аяуюеыиоь")  # case endings cut by _stem, longest first
_ISLAND = re.compile(r"(?<![а-я])(?:в\.\s?о|п\.\s?с)\.?(?![а-я])")  # "11-я линия В.О."
_HOUSE = re.compile(r"(?i)(?:дом|д\.?)\s*(\d+)")  # "дом 11/13" in the portal's address
_TOKEN = re.compile(r"(\d+)(?:-?([а-я]{1,3})(?![а-я]))?|[а-я]+(?:-[а-я]+)*")


@dataclass(frozen=True)
class Place:
    """Where one appeal is, how that was found and how sure it is."""

    district: str  # "" when unknown
    municipality: str  # "" when unknown
    method: str  # "given" | "point" | "address_in_text" | "none"
    confidence: float  # 0..1
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        unknown_none = {
            "district": self.district or None,
            "municipality": self.municipality or None,
        }
        return {**vars(self), **unknown_none, "notes": list(self.notes)}


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _float(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _norm_district(name: str) -> str:
    return name.casefold().replace("ё", "е").strip().removesuffix(" район").strip()


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    # Cut the case ending so that "Невском" and "Невский" share the key "невск".
    for end in _ENDINGS:
        if word.endswith(end) and len(word) - len(end) >= 3:
            return word[: -len(end)]
    return word


Token = tuple[str, str]  # (kind, key): kind w(ord) | o(rdinal) | n(umber) | t(ype) | f(iller)


def _tokens(text: str) -> list[Token]:
    text = _ISLAND.sub(" ", text.lower().replace("ё", "е"))
    out: list[Token] = []
    for m in _TOKEN.finditer(text):
        if m.group(1):
            out.append(("o" if m.group(2) in _ORDINAL else "n", m.group(1)))
        else:
            word = m.group(0)
            kind = "t" if word in _TYPES else "f" if word in _FILLERS else "w"
            key = (_ABBREVIATIONS.get(word) or _stem(word)) if kind == "w" else word
            out.append((kind, key))
    return out


def street_key(name: str) -> str:
    """Gazetteer key of a street: stems, no type ("5-я Красноармейская" → "5 красноармейск")."""
    return " ".join(key for kind, key in _tokens(name) if kind in "won")


def _split_address(address: str) -> tuple[str, str]:
    """(street_key, house) of a portal address 'г.Санкт-Петербург, Конная ул., дом 18, литера А'."""
    parts = [p.strip() for p in address.split(",")]
    for i, part in enumerate(parts):
        if m := _HOUSE.match(part):
            return (street_key(parts[i - 1]) if i else ""), m.group(1)
    return street_key(parts[1] if len(parts) > 1 else parts[0]), ""


class PlaceResolver(BaseEstimator):
    """District and municipality of appeals from the given fields, the point or the text.

    Parameters
    ----------
    n_neighbors : training points that vote on the district of a point.
    max_distance_km : a point farther than this from every training point is outside.
    min_street_count : training addresses a street needs to enter the gazetteer.
    """

    def __init__(
        self, n_neighbors: int = 15, max_distance_km: float = 3.0, min_street_count: int = 1
    ) -> None:
        self.n_neighbors = n_neighbors
        self.max_distance_km = max_distance_km
        self.min_street_count = min_street_count

    def fit(self, columns: Columns | pd.DataFrame, y: object = None) -> PlaceResolver:
        cols = appeal_columns(columns) if isinstance(columns, pd.DataFrame) else columns
        n = _n_rows(cols)
        dist = [_text(v) for v in _column(cols, "district", n)]
        muni = [_text(v) for v in _column(cols, "municipality", n)]
        self.districts_ = tuple(sorted({d for d in dist if d}))
        self.municipalities_ = ("", *sorted({m for m in muni if m}))  # code 0: unknown
        d_code = {d: i for i, d in enumerate(self.districts_)}
        m_code = {m: i for i, m in enumerate(self.municipalities_)}
        pairs = [(d_code.get(d, -1), m_code[m]) for d, m in zip(dist, muni, strict=True)]
        codes = np.array(pairs, dtype=int).reshape(-1, 2)
        lat = np.array([_float(v) for v in _column(cols, "lat", n)], dtype=float)
        lon = np.array([_float(v) for v in _column(cols, "lon", n)], dtype=float)
        ok = np.isfinite(lat) & np.isfinite(lon) & (codes[:, 0] >= 0)
        self.cos_lat_ = float(math.cos(math.radians(lat[ok].mean()))) if ok.any() else 1.0
        box = np.array([lat[ok], lon[ok]]) if ok.any() else np.full((2, 1), np.nan)
        self.bounds_ = (box.min(1) - _MARGIN_DEG, box.max(1) + _MARGIN_DEG)  # (lat, lon) each
        scaled = np.column_stack([lat[ok], lon[ok] * self.cos_lat_]).astype(np.float32)
        # The same building is appealed about many times: one point per (place, label).
        rows = np.unique(np.column_stack([scaled, codes[ok]]), axis=0)
        if len(rows) > _MAX_POINTS:
            rows = rows[np.random.default_rng(0).choice(len(rows), _MAX_POINTS, replace=False)]
        self.points_ = rows[:, :2].astype(np.float32)
        self.point_district_ = rows[:, 2].astype(np.uint8)
        self.point_municipality_ = rows[:, 3].astype(np.uint16)

        streets: dict[str, Counter[tuple[int, int]]] = defaultdict(Counter)
        houses: dict[str, Counter[tuple[int, int]]] = defaultdict(Counter)
        for address, (d, m) in zip(_column(cols, "address", n), codes.tolist(), strict=True):
            key, house = _split_address(_text(address)) if d >= 0 else ("", "")
            if key:
                streets[key][d, m] += 1
                if house:
                    houses[f"{key}|{house}"][d, m] += 1
        self.streets_: dict[str, tuple[int, int, float]] = {}
        for key, counts in streets.items():
            total = sum(counts.values())
            if total < self.min_street_count:
                continue
            by_district = Counter(d for (d, _), c in counts.items() for _ in range(c))
            best, share = by_district.most_common(1)[0]
            top_muni = max((c, m) for (d, m), c in counts.items() if d == best)[1]
            self.streets_[key] = (best, top_muni, round(share / total, 3))
        self.houses_ = {
            k: c.most_common(1)[0][0] for k, c in houses.items() if k.split("|")[0] in self.streets_
        }
        self._cache: dict[str, Any] = {}
        return self

    def __getstate__(self) -> dict[str, Any]:
        # Lookups are rebuilt on first use: pickling the tree would double the model size.
        state = dict(super().__getstate__())
        state.pop("_cache", None)
        return state

    def _lookup_tables(self) -> dict[str, Any]:
        """KD-tree, district names → codes, first words of street keys (derived, not saved)."""
        if not getattr(self, "_cache", None):
            self._cache = {
                "tree": cKDTree(self.points_.astype(np.float64)),
                "district": {_norm_district(d): i for i, d in enumerate(self.districts_)},
                "first": {key.split()[0] for key in self.streets_},
            }
        return self._cache

    def resolve(self, columns: Columns) -> list[Place]:
        """One `Place` per row (see the module docstring for the order of trust)."""
        check_is_fitted(self, "points_")
        cols = appeal_columns(columns) if isinstance(columns, pd.DataFrame) else columns
        n = _n_rows(cols)
        codes = self._lookup_tables()["district"]
        given = np.array(
            [codes.get(_norm_district(_text(v)), -1) for v in _column(cols, "district", n)],
            dtype=int,
        )
        munis = [_text(v) for v in _column(cols, "municipality", n)]
        lat = np.array([_float(v) for v in _column(cols, "lat", n)], dtype=float)
        lon = np.array([_float(v) for v in _column(cols, "lon", n)], dtype=float)
        votes, point_notes = self._points(lat, lon, given)
        addresses, texts = _column(cols, "address", n), _column(cols, "text", n)
        m_code = {m: i for i, m in enumerate(self.municipalities_) if i}
        out: list[Place] = []
        for i in range(n):
            notes, (p_dist, p_muni, p_conf) = point_notes[i], votes[i]
            if given[i] >= 0:
                if p_dist >= 0 and p_dist != given[i] and p_conf >= _CONTRADICTS:
                    notes = (*notes, "district_contradicts_point")
                muni = munis[i] if munis[i] in m_code else self.municipalities_[p_muni]
                out.append(Place(self.districts_[given[i]], muni, "given", 1.0, notes))
            elif p_dist >= 0:
                place = (self.districts_[p_dist], self.municipalities_[p_muni])
                out.append(Place(*place, "point", round(p_conf, 3), notes))
            else:
                address = _text(addresses[i])  # the portal's field, when only it came
                found = self._lookup([_split_address(address)] if address else [])
                found = found or self._lookup(self._candidates(_text(texts[i])))
                if found:
                    out.append(Place(*found[:2], "address_in_text", found[2], notes))
                else:
                    out.append(Place("", "", "none", 0.0, notes))
        return out

    def _points(self, lat: np.ndarray, lon: np.ndarray, given: np.ndarray) -> tuple[list, list]:
        """kNN vote for every row with a point: (district, municipality, share) and notes."""
        n = len(lat)
        vote: list[tuple[int, int, float]] = [(-1, 0, 0.0)] * n
        notes: list[tuple[str, ...]] = [()] * n
        rows = np.flatnonzero(np.isfinite(lat) & np.isfinite(lon))
        if not len(rows) or not len(self.points_):
            return vote, notes
        q = np.column_stack([lat[rows], lon[rows]])
        inside, dist, idx = self._query(q)
        swap = np.flatnonzero(~inside)
        if len(swap):
            in2, d2, i2 = self._query(q[swap, ::-1])
            inside[swap], dist[swap], idx[swap] = in2, d2, i2
            for j, ok in zip(swap, in2, strict=True):
                notes[rows[j]] = ("lat_lon_swapped",) if ok else ("point_outside_region",)
        rows, dist, idx = rows[inside], dist[inside], idx[inside]
        for s in range(0, len(rows), _CHUNK):
            r, d, k = rows[s : s + _CHUNK], dist[s : s + _CHUNK], idx[s : s + _CHUNK]
            w = 1.0 / (d * KM_PER_DEGREE + _SOFTEN_KM)
            at = np.repeat(np.arange(len(r)), k.shape[1])
            votes = np.zeros((len(r), len(self.districts_)))
            np.add.at(votes, (at, self.point_district_[k].ravel()), w.ravel())
            best = votes.argmax(1)
            share = votes[np.arange(len(r)), best] / votes.sum(1)
            # Municipality among neighbours of the district that will be reported.
            target = np.where(given[r] >= 0, given[r], best)
            same = self.point_district_[k] == target[:, None]
            m_votes = np.zeros((len(r), len(self.municipalities_)))
            np.add.at(m_votes, (at, self.point_municipality_[k].ravel()), (w * same).ravel())
            m_votes[:, 0] = 0.0
            muni = np.where(m_votes.max(1) > 0, m_votes.argmax(1), 0)
            for row, b, m, c in zip(r, best, muni, share, strict=True):
                vote[row] = (int(b), int(m), float(c))
        return vote, notes

    def _query(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(inside region, neighbour distances in degrees, neighbour indices) of (lat, lon) rows."""
        in_box = ((q >= self.bounds_[0]) & (q <= self.bounds_[1])).all(1)
        k = max(1, min(self.n_neighbors, len(self.points_)))
        scaled = np.column_stack([q[:, 0], q[:, 1] * self.cos_lat_])
        dist, idx = self._lookup_tables()["tree"].query(scaled, k=k)
        dist, idx = dist.reshape(len(q), k), idx.reshape(len(q), k)
        inside = in_box & (dist[:, 0] * KM_PER_DEGREE <= self.max_distance_km)
        return inside, dist, idx

    def address_in_text(self, text: str) -> tuple[str, str] | None:
        """(street_key, house) of the first known street typed in `text`; house may be ""."""
        check_is_fitted(self, "streets_")
        found = self._candidates(_text(text))
        return found[0] if found else None

    def _lookup(self, found: list[tuple[str, str]]) -> tuple[str, str, float] | None:
        """A known (street, house) first, else a street mostly in one district."""
        for key, house in found:
            if f"{key}|{house}" in self.houses_:
                d, m = self.houses_[f"{key}|{house}"]
                return self.districts_[d], self.municipalities_[m], _HOUSE_CONFIDENCE
        for key, _ in found:
            if key in self.streets_ and self.streets_[key][2] >= _MIN_STREET_SHARE:
                d, m, share = self.streets_[key]
                return self.districts_[d], self.municipalities_[m], min(share, _STREET_CONFIDENCE)
        return None

    def _known(self, toks: list[Token], start: int) -> tuple[str, int] | None:
        """The longest known street name (≤ 3 tokens) starting at `start`: (key, end)."""
        if start >= len(toks) or toks[start][1] not in self._lookup_tables()["first"]:
            return None  # the common case, cheaply
        for size in (3, 2, 1):
            span = toks[start : start + size]
            if len(span) < size or any(
                kind not in "wo" and not (kind == "n" and j == 0)
                for j, (kind, _) in enumerate(span)
            ):
                continue
            key = " ".join(k for _, k in span)
            if key in self.streets_ and key not in _COMMON:
                return key, start + size
        return None

    @staticmethod
    def _house(toks: list[Token], after: int, before: int) -> str:
        """A house number right after `after` ("д. 5"), else before `before` ("дома 42 по")."""
        j = after
        while j < len(toks) and j - after < 2 and toks[j][0] == "f":
            j += 1
        if j < len(toks) and toks[j][0] == "n" and len(toks[j][1]) <= 3:  # not "в 2021 году"
            return toks[j][1]
        j = before - 1
        if j >= 0 and toks[j][1] == "по":
            j -= 1
        last = j
        while j >= 0 and toks[j][0] == "n" and last - j < 2:  # "дома 171/4 по пр. Ветеранов"
            j -= 1
        return toks[j + 1][1] if 0 <= j < last and toks[j][0] == "f" else ""

    def _candidates(self, text: str) -> list[tuple[str, str]]:
        """Streets in `text` with their house ("" if none): typed ones, or names + a number."""
        toks, out, i = _tokens(text), [], 0
        while i < len(toks):
            if toks[i][0] == "t":  # "ул. Дыбенко 5", "пр Ветеранов 10"
                hit = self._known(toks, i + 1)
                if hit and (not hit[0].isdigit() or toks[i][1] in _LINES):
                    out.append((hit[0], self._house(toks, hit[1], i)))
                    i = hit[1]
                    continue
            elif i == 0 or toks[i - 1][1] not in _TOWN:
                hit = self._known(toks, i)
                if hit:
                    key, end = hit
                    typed = end < len(toks) and toks[end][0] == "t"
                    if typed and (not key.isdigit() or toks[end][1] in _LINES):  # "Ленинский пр."
                        out.append((key, self._house(toks, end + 1, i)))
                        i = end + 1
                        continue
                    house = self._house(toks, end, i)
                    # Without a type word only "name + number" counts: fewer false streets.
                    if house and not key.isdigit():
                        out.append((key, house))
                        i = end
                        continue
            i += 1
        return out


_SEQUENCES = (list, tuple, np.ndarray, pd.Series)


def _n_rows(cols: Columns) -> int:
    return max((len(v) for v in cols.values() if isinstance(v, _SEQUENCES)), default=0)


def _column(cols: Columns, name: str, n: int) -> list:
    """Column `name` as a list of exactly `n` values (None where missing or short)."""
    values = list(cols[name])[:n] if isinstance(cols.get(name), _SEQUENCES) else []
    return values + [None] * (n - len(values))
