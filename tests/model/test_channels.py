"""One model for every channel: portal forms, geotagged posts, bare texts, social-style posts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cur_ml.data import INPUT_COLUMNS
from cur_ml.model.operating import review_threshold, urgency_threshold
from cur_ml.model.training import evaluate_model
from cur_ml.profiles import PROFILES, apply_profile

#: How far a bare text may fall below a full portal form on the demo data (stated, not tuned:
#: the demo model loses 0.04-0.05 of category and reason accuracy without the form).
TEXT_MARGIN = 0.08


def test_profiles_blank_what_a_channel_lacks(demo_dev):
    frame = demo_dev.frame.head(20)
    for name, keep in PROFILES.items():
        view = apply_profile(frame, name)
        for column in INPUT_COLUMNS:
            if column in keep:
                continue
            values = view[column].tolist()
            blank = (
                all(math.isnan(v) for v in values)
                if column in ("lat", "lon")
                else (set(values) == {""})
            )
            assert blank, (name, column)
        # Labels are never inputs, and never touched.
        assert view["reason"].tolist() == frame["reason"].tolist()
    assert apply_profile(frame, "geo")["lat"].tolist() == frame["lat"].tolist()
    with pytest.raises(ValueError, match="unknown profile 'fax'"):
        apply_profile(frame, "fax")


def test_social_profile_is_deterministic_and_restyled(demo_dev):
    frame = demo_dev.frame.head(50)
    once, twice = apply_profile(frame, "social"), apply_profile(frame, "social")
    assert once["text"].tolist() == twice["text"].tolist()
    assert (once["text"] != frame["text"]).mean() > 0.8


def test_text_only_stays_close_to_the_portal_form(demo_model, demo_dev):
    portal = evaluate_model(demo_model, apply_profile(demo_dev.frame, "portal"))
    text = evaluate_model(demo_model, apply_profile(demo_dev.frame, "text"))
    for head in ("category", "reason", "urgency"):
        assert text[head]["accuracy"] >= portal[head]["accuracy"] - TEXT_MARGIN, head


def test_an_absent_field_is_absent(demo_model, demo_dev):
    """Missing, empty and unknown values of a field all mean "not given"."""
    row = demo_dev.frame.iloc[3]
    base = {"id": 1, "text": row["text"], "created_at": row["created_at"]}
    variants = [
        base,
        {**base, "city_object": "", "district": "", "lat": None, "lon": float("nan")},
        {**base, "city_object": "Космодром"},  # not on the form: not a value the model knows
    ]
    answers = [demo_model.predict([v])[0] for v in variants]
    for other in answers[1:]:
        assert other["reason"] == answers[0]["reason"]
        assert other["confidence"] == answers[0]["confidence"]


def test_place_from_point_and_from_typed_address(demo_model, demo_dev):
    row = demo_dev.frame[demo_dev.frame["address"] != ""].iloc[0]
    by_point = demo_model.predict([{"text": row["text"], "lat": row["lat"], "lon": row["lon"]}])[0]
    assert by_point["place"]["method"] == "point"
    assert by_point["place"]["district"] == row["district"]
    assert "place_unknown" not in by_point["review_reasons"]
    # Agency works for a geotagged post: a district role is filled with the found district.
    assert by_point["agency"] in demo_model.classifier.taxonomy_.agencies

    street = row["address"].split(",")[1].strip()  # "проспект Косыгина"
    house = row["address"].split("дом ")[1].split(",")[0]
    typed = demo_model.predict([{"text": f"Не работает лифт, {street} {house}"}])[0]
    assert typed["place"]["method"] == "address_in_text"
    assert typed["place"]["district"] == row["district"]


def test_no_place_still_routes_and_asks_for_review(demo_model):
    [answer] = demo_model.predict([{"text": "Во дворе не вывозят мусор уже неделю"}])
    assert answer["place"] == {
        "district": None,
        "municipality": None,
        "method": "none",
        "confidence": 0.0,
        "notes": [],
    }
    assert answer["needs_review"] and "place_unknown" in answer["review_reasons"]
    assert answer["agency"]  # the best agency all the same


@pytest.mark.parametrize(
    ("appeal", "reason", "notes"),
    [
        (
            {"text": "#СПб #ЖКХ @gubernator_spb 😡😡 https://vk.com/wall-1_2"},
            "only_tags_or_links",
            [],
        ),
        (
            {"text": "Яма на дороге", "lat": 55.75, "lon": 37.62},
            "place_unknown",
            ["point_outside_region"],
        ),
    ],
)
def test_bad_input_is_flagged_not_crashed(demo_model, appeal, reason, notes):
    [answer] = demo_model.predict([appeal])
    assert answer["needs_review"] and reason in answer["review_reasons"]
    assert answer["place"]["notes"] == notes


def test_swapped_and_contradictory_points(demo_model, demo_dev):
    row = demo_dev.frame.iloc[0]
    [swapped] = demo_model.predict([{"text": row["text"], "lat": row["lon"], "lon": row["lat"]}])
    assert swapped["place"]["notes"] == ["lat_lon_swapped"]
    assert swapped["place"]["district"] == row["district"]
    elsewhere = demo_dev.frame[demo_dev.frame["district"] != row["district"]].iloc[0]
    [clash] = demo_model.predict(
        [
            {
                "text": row["text"],
                "district": row["district"],
                "lat": elsewhere["lat"],
                "lon": elsewhere["lon"],
            }
        ]
    )
    assert clash["place"]["district"] == row["district"]  # the form's district is kept
    assert "place_contradicts_point" in clash["review_reasons"]


def test_urgency_operating_point_is_read_from_the_model(demo_model, demo_dev):
    classifier = demo_model.classifier
    points = classifier.high_threshold_
    assert set(points) == {"form", "text"} and all(0 < t < 1 for t in points.values())
    frame = demo_dev.frame.head(60)
    try:
        classifier.high_threshold_ = {"form": 0.0, "text": 0.0}
        assert {p["urgency"] for p in demo_model.predict(frame)} == {"high"}
        classifier.high_threshold_ = {"form": 1.01, "text": 1.01}
        tax = classifier.taxonomy_
        assert all(p["urgency"] == tax.urgency_of[p["reason"]] for p in demo_model.predict(frame))
    finally:
        classifier.high_threshold_ = points


def test_urgency_threshold_weighs_a_miss_above_a_false_alarm():
    rng = np.random.default_rng(0)
    is_high = rng.random(2000) < 0.3
    p_high = np.clip(np.where(is_high, 0.7, 0.2) + rng.normal(0, 0.2, 2000), 0, 1)
    cheap, dear = urgency_threshold(p_high, is_high, 1.0), urgency_threshold(p_high, is_high, 8.0)
    assert dear < cheap
    assert (p_high[is_high] >= dear).mean() > (p_high[is_high] >= cheap).mean()


def test_review_threshold_meets_its_accuracy():
    rng = np.random.default_rng(1)
    confidence = rng.random(5000)
    correct = rng.random(5000) < confidence  # calibrated
    t = review_threshold(confidence, correct, 0.9)
    kept = confidence >= t
    assert correct[kept].mean() >= 0.9
    assert 0.5 < t < 0.95


def test_review_thresholds_come_from_the_calibration_curve(demo_model):
    fitted = dict(demo_model.classifier.review_policy_.min_confidence)
    assert fitted != {"category": 0.6, "reason": 0.45, "urgency": 0.6, "agency": 0.5}
    assert demo_model.policy is demo_model.classifier.review_policy_
    assert demo_model.manifest["operating_point"]["review_min_confidence"] == fitted
