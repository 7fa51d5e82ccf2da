"""Is a map point on a building that appeals have named before?

Portal appeals about a house or its yard carry the building's address and a point
on it; a geotagged post has only the point. A point within a few metres of a
known building point says "house or yard" far better than the words alone do.
Only positive evidence is used: no point, or a point elsewhere, says nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

__all__ = ["BuildingIndex"]

_METRES_PER_DEGREE = 111_200.0


class BuildingIndex(BaseEstimator):
    """Distinct points of appeals that named a building, with how many appeals each has.

    Parameters
    ----------
    radius_m : a point this close to a building point is on that building.
    """

    def __init__(self, radius_m: float = 5.0) -> None:
        self.radius_m = radius_m

    def _xy(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return np.c_[lat, lon * self.cos_lat_] * _METRES_PER_DEGREE

    def fit(
        self, lat: Sequence[float], lon: Sequence[float], address: Sequence[str]
    ) -> BuildingIndex:
        lat, lon = np.asarray(lat, float), np.asarray(lon, float)
        named = np.isfinite(lat) & np.isfinite(lon) & np.array([bool(a) for a in address])
        points = np.round(np.c_[lat[named], lon[named]], 6)
        self.points_, self.counts_ = (
            np.unique(points, axis=0, return_counts=True) if len(points) else (points, [])
        )
        self.points_ = self.points_.astype(np.float64)
        self.counts_ = np.asarray(self.counts_, dtype=np.int32)
        mean_lat = float(self.points_[:, 0].mean()) if len(self.points_) else 0.0
        self.cos_lat_ = math.cos(math.radians(mean_lat))
        self._tree = None
        return self

    def _query(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if getattr(self, "_tree", None) is None:  # rebuilt after unpickling, not stored
            self._tree = cKDTree(self._xy(self.points_[:, 0], self.points_[:, 1]))
        return self._tree.query(xy, distance_upper_bound=self.radius_m)

    def on_building(
        self,
        lat: Sequence[float],
        lon: Sequence[float],
        own_address: Sequence[str] | None = None,
    ) -> np.ndarray:
        """True where the point is on a known building.

        `own_address` is given for the training rows themselves: a row that named a
        building must find another appeal there, not only itself.
        """
        check_is_fitted(self, "points_")
        lat, lon = np.asarray(lat, float), np.asarray(lon, float)
        out = np.zeros(len(lat), dtype=bool)
        ok = np.isfinite(lat) & np.isfinite(lon)
        if not ok.any() or not len(self.points_):
            return out
        distance, index = self._query(self._xy(lat[ok], lon[ok]))
        found = np.isfinite(distance)
        needed = np.ones(len(distance), dtype=np.int32)
        if own_address is not None:
            needed += np.array([bool(a) for a in own_address])[ok]
        counts = np.zeros(len(distance), dtype=np.int32)
        counts[found] = self.counts_[index[found]]
        out[ok] = found & (counts >= needed)
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_tree", None)
        return state
