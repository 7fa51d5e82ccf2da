"""The regions of an operator's or admin's request, as dependencies: a personal account sees
and corrects only its regions' appeals; the environment tokens act for every region."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from cur_ml.api.deps import AdminAuth, OperatorAuth, SettingsDep
from cur_ml.api.errors import ApiError
from cur_ml.api.schemas import RegionCode
from cur_ml.auth import RegionAccess
from cur_ml.errors import UnknownRegionError

__all__ = ["AdminRegions", "OperatorRegions", "RegionFilter", "chosen_region", "region_scope"]

#: The `region` filter of a listing: one of the caller's regions.
RegionFilter = Annotated[
    RegionCode | None,
    Query(
        description="Только этого региона (одного из регионов вызывающего); без него — "
        "все его регионы."
    ),
]


async def _operator_regions(identity: OperatorAuth, settings: SettingsDep) -> RegionAccess:
    return RegionAccess.of(identity.regions, settings)


async def _admin_regions(identity: AdminAuth, settings: SettingsDep) -> RegionAccess:
    return RegionAccess.of(identity.regions, settings)


# The same `OperatorAuth` / `AdminAuth` as the routes': FastAPI checks the token once.
OperatorRegions = Annotated[RegionAccess, Depends(_operator_regions)]
AdminRegions = Annotated[RegionAccess, Depends(_admin_regions)]


def chosen_region(access: RegionAccess, region: str, loc: tuple[str, ...]) -> str:
    """`region` when the deployment serves it (else a 422 naming it at `loc`) and the caller
    works in it (else a 403)."""
    try:
        access.known(region)
    except UnknownRegionError as exc:
        raise RequestValidationError(
            [{"type": "unknown_region", "loc": loc, "msg": exc.message}]
        ) from None
    if not access.works_in(region):
        yours = ", ".join(access.regions) or "none"
        raise ApiError(
            403, "forbidden_region", f"you do not work in region {region!r} (yours: {yours})"
        )
    return region


def region_scope(access: RegionAccess, region: str | None) -> tuple[str, ...] | None:
    """The regions a listing keeps to: the `region` query parameter when given (checked as
    `chosen_region` does), else every region of the caller (None: no limit)."""
    if region is None:
        return access.scope()
    return access.scope(chosen_region(access, region, ("query", "region")))
