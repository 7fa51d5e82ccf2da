"""PlaceResolver: given district → map point → address typed in the text → unknown."""

from __future__ import annotations

import json
import math
import pickle
import time

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from cur_ml.data import appeal_columns, load_appeals
from cur_ml.model.place import Place, PlaceResolver, street_key

# Hand-written streets (not from any data file) for the text parser: one row per address.
STREETS = [
    ("Невский", "г.Санкт-Петербург, улица Дыбенко, дом 5, литера А"),
    ("Красносельский", "г.Санкт-Петербург, проспект Ветеранов, дом 10"),
    ("Центральный", "г.Санкт-Петербург, Невский проспект, дом 180"),
    ("Кировский", "г.Санкт-Петербург, Ленинский проспект, дом 120, корпус 1"),
    ("Выборгский", "г.Санкт-Петербург, улица Есенина, дом 1, корпус 2"),
    ("Адмиралтейский", "г.Санкт-Петербург, набережная Обводного канала, дом 5"),
    ("Адмиралтейский", "г.Санкт-Петербург, 5-я Красноармейская улица, дом 11/13, литера А"),
    ("Василеостровский", "г.Санкт-Петербург, 11-я линия В.О., дом 40"),
    ("Петроградский", "г.Санкт-Петербург, Большой проспект П.С., дом 3"),
    ("Центральный", "г.Санкт-Петербург, Парадная улица, дом 3"),
    ("Центральный", "г.Санкт-Петербург, улица Ломоносова, дом 5"),
    ("Пушкинский", "город Пушкин, Церковная улица, дом 21а, литера А"),
]


@pytest.fixture(scope="module")
def streets() -> PlaceResolver:
    return PlaceResolver().fit(
        {"district": [d for d, _ in STREETS], "address": [a for _, a in STREETS]}
    )


@pytest.fixture(scope="module")
def demo(demo_train) -> tuple[PlaceResolver, dict]:
    return PlaceResolver().fit(demo_train.frame), appeal_columns(demo_train.frame)


def test_estimator_contract(demo_train, tmp_path):
    resolver = PlaceResolver(n_neighbors=7)
    assert not [k for k in vars(resolver) if k.endswith("_")]
    assert clone(resolver).get_params() == {
        "n_neighbors": 7,
        "max_distance_km": 3.0,
        "min_street_count": 1,
    }
    with pytest.raises(NotFittedError):
        resolver.resolve({"lat": [59.9], "lon": [30.3]})
    assert resolver.fit(demo_train.frame) is resolver
    batch = appeal_columns(demo_train.frame.head(50).assign(district=""))
    before = resolver.resolve(batch)
    joblib.dump(resolver, tmp_path / "place.joblib")
    assert joblib.load(tmp_path / "place.joblib").resolve(batch) == before
    assert len(pickle.dumps(resolver)) < 200_000  # compact: no KD-tree, no raw rows inside
    assert resolver.points_.dtype == np.float32


def test_training_points_resolve_to_their_district(demo):
    resolver, cols = demo
    out = resolver.resolve({"lat": cols["lat"], "lon": cols["lon"]})
    assert {p.method for p in out} == {"point"}
    accuracy = np.mean([p.district == d for p, d in zip(out, cols["district"], strict=True)])
    assert accuracy >= 0.95
    municipal = np.mean(
        [p.municipality == m for p, m in zip(out, cols["municipality"], strict=True)]
    )
    assert municipal >= 0.9
    assert all(0 < p.confidence <= 1 for p in out)
    # Training rows without a municipality do not vote for "no municipality".
    half = [m if i % 2 else "" for i, m in enumerate(cols["municipality"])]
    blank = PlaceResolver().fit({**cols, "municipality": half})
    out = blank.resolve({"lat": cols["lat"], "lon": cols["lon"]})
    assert np.mean([p.municipality == "" for p in out]) < 0.05


@pytest.mark.parametrize(
    ("lat", "lon", "method", "notes"),
    [
        ("row_lon", "row_lat", "point", ("lat_lon_swapped",)),
        (55.75, 37.62, "none", ("point_outside_region",)),  # Moscow
        (37.62, 55.75, "none", ("point_outside_region",)),  # Moscow, swapped
        (0.0, 0.0, "none", ("point_outside_region",)),
        (float("inf"), 30.3, "none", ()),  # not a point at all: nothing to note
    ],
)
def test_points_outside_or_swapped(demo, lat, lon, method, notes):
    resolver, cols = demo
    i = 0
    lat = cols["lon"][i] if lat == "row_lon" else lat
    lon = cols["lat"][i] if lon == "row_lat" else lon
    (place,) = resolver.resolve({"lat": [lat], "lon": [lon], "text": ["мусор во дворе"]})
    assert (place.method, place.notes) == (method, notes)
    if method == "point":
        assert place.district == cols["district"][i]
    else:
        assert place.as_dict()["district"] is None and place.confidence == 0


def test_point_inside_the_box_but_far_from_any_appeal_is_outside(demo):
    resolver, cols = demo
    lat, lon = min(cols["lat"]) + 0.01, min(cols["lon"]) + 0.01  # the box's empty SW corner
    km = np.hypot(np.subtract(cols["lat"], lat), np.subtract(cols["lon"], lon) * 0.5) * 111
    assert km.min() > 3.5, "precondition: no demo appeal near the corner"
    (place,) = resolver.resolve({"lat": [lat], "lon": [lon]})
    assert (place.method, place.notes) == ("none", ("point_outside_region",))


def test_given_district_wins_and_a_contradicting_point_is_noted(demo):
    resolver, cols = demo
    points = resolver.resolve({"lat": cols["lat"], "lon": cols["lon"]})
    i = next(
        j
        for j, p in enumerate(points)
        if p.confidence >= 0.95 and p.district not in ("Курортный", "") and p.municipality
    )
    d, m, lat, lon = (cols[c][i] for c in ("district", "municipality", "lat", "lon"))
    table = [  # district, municipality, lat, lon → district, municipality, notes
        ("Курортный", "", lat, lon, "Курортный", "", ("district_contradicts_point",)),
        (d, "", lat, lon, d, m, ()),  # the municipality from the neighbours of `d`
        (d, "муниципальный округ Нарния", None, None, d, "", ()),
        (f"  {d.lower()} район ", m, lat, lon, d, m, ()),
        (d, m, lon, lat, d, m, ("lat_lon_swapped",)),
    ]
    names = ("district", "municipality", "lat", "lon")
    out = resolver.resolve({name: [row[j] for row in table] for j, name in enumerate(names)})
    for place, (*_, district, municipality, notes) in zip(out, table, strict=True):
        assert (place.method, place.confidence) == ("given", 1.0)
        assert (place.district, place.municipality, place.notes) == (district, municipality, notes)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("ул. Дыбенко, д. 5. Течёт крыша", ("дыбенк", "5")),
        ("пр Ветеранов 10, яма", ("ветеранов", "10")),
        ("яма на Невском проспекте 180", ("невск", "180")),
        ("Ленинский пр., 120 — нет света", ("ленинск", "120")),
        ("улица Есенина д.1 к.2", ("есенин", "1")),
        ("наб. Обводного канала 5", ("обводн канал", "5")),
        ("у 5-й Красноармейской ул., 11", ("5 красноармейск", "11")),
        ("11 линия ВО д 40", ("11", "40")),
        ("напротив дома 7 по ул. Дыбенко", ("дыбенк", "7")),
        ("Церковная 21а, подъезд 2", ("церковн", "21")),
        ("г. Ломоносов, ул. Дыбенко 5", ("дыбенк", "5")),  # a town is not a street
        ("на ул. Есенина грязно", ("есенин", "")),
        ("парадная 3 не убрана", None),  # common words that also name streets
        ("не убирают больше 5 дней", None),
        ("Есенина 2021 года", None),  # a year is no house number
        ("мусор во дворе, 3 подъезд", None),
        ("", None),
    ],
)
def test_address_in_text(streets, text, found):
    assert streets.address_in_text(text) == found


def test_street_keys_match_across_cases():
    assert street_key("Невский проспект") == street_key("Невском пр-те") == "невск"
    assert street_key("5-я Красноармейская улица") == "5 красноармейск"
    assert street_key("Б.Конюшенной ул.") == street_key("Большая Конюшенная улица")


def test_typed_address_resolves_by_house_then_by_street(streets, demo):
    out = streets.resolve({"text": ["ул. Дыбенко, д. 5", "ул. Дыбенко, д. 77", "Мусор"]})
    assert [(p.district, p.method, p.confidence) for p in out] == [
        ("Невский", "address_in_text", 0.95),
        ("Невский", "address_in_text", 0.9),  # the street alone, less sure
        ("", "none", 0.0),
    ]
    resolver, _ = demo  # streets of the demo addresses; Садовая is in two districts
    table = [
        ("Снова про ул Есенина д 9, мусор", "Выборгский"),
        ("Гражданский пр., д. 4 — яма", "Калининский"),
        ("Садовая 12, не убрано", "Центральный"),
        ("Кадетская линия В.О. 11: граффити", "Василеостровский"),
        ("Во дворе лужа", ""),
    ]
    out = resolver.resolve({"text": [t for t, _ in table], "lat": [math.nan] * len(table)})
    assert [p.district for p in out] == [d for _, d in table]
    assert [p.method for p in out] == ["address_in_text"] * 4 + ["none"]


def test_the_portal_address_field_is_used_without_a_point(demo):
    resolver, cols = demo
    i = next(j for j, a in enumerate(cols["address"]) if a.startswith("г.Санкт-Петербург"))
    (place,) = resolver.resolve({"address": [cols["address"][i]], "text": ["мусор"]})
    assert (place.district, place.method) == (cols["district"][i], "address_in_text")


JUNK = [None, math.nan, math.inf, -math.inf, "", "abc", "59,93", 1e308, True, [], {}, object()]


def test_junk_never_raises(demo):
    resolver, _ = demo
    n = len(JUNK)
    batches = [
        {c: list(JUNK) for c in ("district", "municipality", "address", "lat", "lon", "text")},
        {"lat": list(JUNK), "lon": list(reversed(JUNK)), "text": list(JUNK)},
        {"district": ["Невский"], "lat": [59.9, 60.0], "lon": None, "text": "not a list"},
        {},
        {"text": []},
    ]
    for batch in batches:
        out = resolver.resolve(batch)
        assert len(out) == max((len(v) for v in batch.values() if isinstance(v, list)), default=0)
        for place in out:
            assert isinstance(place, Place) and 0 <= place.confidence <= 1
            json.dumps(place.as_dict())
    assert {p.method for p in resolver.resolve(batches[0])} == {"none"}
    assert len(resolver.resolve(batches[0])) == n


@pytest.mark.shared  # seconds, not minutes: no `slow` mark
def test_real_data_point_and_text(shared_appeals, capsys):
    frame = load_appeals([shared_appeals]).frame
    train, dev = frame[frame["split"] == "train"], frame[frame["split"] == "dev"]
    start = time.perf_counter()
    resolver = PlaceResolver().fit(train)
    fit_s = time.perf_counter() - start
    cols = appeal_columns(dev)
    n = len(cols["text"])

    points = resolver.resolve({"lat": cols["lat"], "lon": cols["lon"]})
    point_acc = np.mean([p.district == d for p, d in zip(points, cols["district"], strict=True)])

    texts = resolver.resolve({"text": cols["text"]})
    parsed = sum(resolver.address_in_text(t) is not None for t in cols["text"])
    hits = [
        p.district == d
        for p, d in zip(texts, cols["district"], strict=True)
        if p.method == "address_in_text"
    ]
    size = len(pickle.dumps(resolver))
    with capsys.disabled():
        print(
            f"\nplace on real dev ({n} rows): fit {fit_s:.1f} s, pickled {size / 1e6:.2f} MB; "
            f"point accuracy {point_acc:.4f}; text: address parsed in {parsed / n:.1%}, "
            f"resolved {len(hits) / n:.1%} ({len(hits)} rows), accuracy {np.mean(hits):.3f}"
        )
    assert point_acc >= 0.95
    assert len(hits) >= 0.05 * n and np.mean(hits) >= 0.85
    assert size < 3_000_000
