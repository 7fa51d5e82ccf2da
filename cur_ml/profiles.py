"""Input profiles: which appeal fields a channel carries.

A portal form has every field; a geotagged social post has a text, a time and a
point; a plain post or comment has a text and a time, and is written the way people
write online. Evaluating a model under a profile blanks every other field, exactly
as an appeal from that channel would arrive: absent, never filled from the labels
or from the row itself.
"""

from __future__ import annotations

import math

import pandas as pd

from cur_ml.data import INPUT_COLUMNS
from cur_ml.text.social import social_style_many

__all__ = ["PROFILES", "SOCIAL_STYLE", "apply_profile", "profile_names"]

#: Profile name → the input fields it keeps (all others arrive empty).
PROFILES: dict[str, tuple[str, ...]] = {
    "portal": INPUT_COLUMNS,
    "geo": ("text", "created_at", "lat", "lon"),
    "text": ("text", "created_at"),
    # A text-only post written as people write online (see `cur_ml.text.social`).
    "social": ("text", "created_at"),
}
#: Profiles whose text is restyled, deterministically, as a social-network post.
SOCIAL_STYLE = frozenset({"social"})


def profile_names(name: str | None = None) -> list[str]:
    """`[name]` after checking it, or every profile when `name` is None."""
    if name is None:
        return list(PROFILES)
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return [name]


def apply_profile(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """A copy of `frame` with the input fields outside profile `name` emptied.

    Label columns are left alone (they are never inputs); lat/lon become NaN. The
    `social` profile also restyles the text (same output for the same rows, every run).
    """
    keep = PROFILES[profile_names(name)[0]]
    out = frame.copy()
    if name in SOCIAL_STYLE:
        out["text"] = social_style_many([str(t) for t in out["text"]], seed=0)
    for column in INPUT_COLUMNS:
        if column in keep or column not in out.columns:
            continue
        out[column] = math.nan if column in ("lat", "lon") else ""
    return out
