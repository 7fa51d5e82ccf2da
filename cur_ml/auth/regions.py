"""Which regions a caller works in, and what the store may show them.

A personal account works in its own regions (`cur-ml users add --region ...`); the shared
environment tokens (CUR_ML_OPERATOR_TOKEN, CUR_ML_ADMIN_TOKEN) act for every region of the
deployment, so personal accounts are how regions are kept apart. Rows written before regions
(region NULL) belong to the deployment's default region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cur_ml.errors import UnknownRegionError
from cur_ml.settings import Settings

__all__ = ["RegionAccess"]


@dataclass(frozen=True)
class RegionAccess:
    """A caller's regions on one deployment."""

    #: Every region the deployment serves, the default one first.
    served: tuple[str, ...]
    #: The deployment's default region (rows without a region are its).
    default: str
    #: The caller's regions (None: every region, an environment token).
    own: tuple[str, ...] | None = None

    @classmethod
    def of(cls, own: Sequence[str] | None, settings: Settings) -> RegionAccess:
        return cls(
            served=tuple(settings.all_regions()),
            default=settings.default_region,
            own=None if own is None else tuple(own),
        )

    @property
    def regions(self) -> tuple[str, ...]:
        """The served regions the caller works in, in the deployment's order."""
        return tuple(r for r in self.served if self.own is None or r in self.own)

    @property
    def several(self) -> bool:
        """Whether the caller has more than one region to choose from."""
        return len(self.regions) > 1

    def region_of(self, region: str | None) -> str:
        """A row's region (None: written before regions, the default region's)."""
        return region or self.default

    def sees(self, region: str | None) -> bool:
        """Whether a row of `region` is the caller's to see and correct."""
        return self.own is None or self.region_of(region) in self.own

    def known(self, region: str) -> str:
        """`region` when the deployment serves it, else `UnknownRegionError` naming it."""
        if region not in self.served:
            raise UnknownRegionError(region, list(self.served))
        return region

    def works_in(self, region: str) -> bool:
        return self.own is None or region in self.own

    def scope(self, region: str | None = None) -> tuple[str, ...] | None:
        """The regions a query keeps to: `region` when given (the caller checked it with
        `known` and `works_in`), else the caller's own (None: no limit, every region)."""
        if region is not None:
            return (region,)
        return None if self.own is None else self.regions
