"""`cur-ml users ...`: personal accounts of operators and admins (add, list, regions, revoke)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cur_ml.settings import Settings
    from cur_ml.store.users import UserRepository

__all__ = ["users_app"]

users_app = typer.Typer(
    no_args_is_help=True,
    help="Personal accounts: each operator signs in with their own token and works in the "
    "regions the account is given. The shared tokens (CUR_ML_OPERATOR_TOKEN, "
    "CUR_ML_ADMIN_TOKEN) act for every region: accounts are how regions are kept apart.",
)

_REGION_HELP = (
    "a region the account works in (repeat for several); it sees and corrects only the "
    "appeals of its regions. Default: the deployment's default region (CUR_ML_REGION)"
)
RegionOption = Annotated[list[str] | None, typer.Option("--region", help=_REGION_HELP)]


def _users() -> tuple[UserRepository, Settings]:
    from cur_ml.settings import Settings
    from cur_ml.store import make_engine, upgrade
    from cur_ml.store.users import UserRepository

    settings = Settings()
    engine = make_engine(settings.database_url)
    with engine.connect():  # the store down or not a database: one line, before alembic logs
        pass
    upgrade(engine)
    return UserRepository(engine), settings


def _served(regions: list[str] | None, settings: Settings) -> list[str]:
    """The regions asked for (none: the default one), each one this deployment serves."""
    from cur_ml.errors import AccountError

    codes = list(dict.fromkeys(r.strip() for r in regions or [settings.default_region]))
    served = settings.all_regions()
    unknown = [code for code in codes if code not in served]
    if unknown:
        raise AccountError(
            f"unknown region {unknown[0]!r}: this deployment serves {', '.join(served)} "
            "(CUR_ML_REGIONS)"
        )
    return codes


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="the person's name, as corrections will show it")],
    role: Annotated[str, typer.Option("--role", help="operator or admin")] = "operator",
    region: RegionOption = None,
) -> None:
    """Make an account and print its token, once: the store keeps only a hash of it. Give the
    token to the person; they sign in to the console with it or send it as a bearer token."""
    users, settings = _users()
    user, token = users.add(name, role, _served(region, settings))
    where = user.regions or settings.default_region
    typer.echo(
        f"account {user.name!r} ({user.role}, regions {where}) added; its token (shown only now):",
        err=True,
    )
    typer.echo(token)


@users_app.command("list")
def list_() -> None:
    """Every account (revoked ones too), one JSON object a line: name, role, regions, created,
    revoked."""
    from cur_ml.store.db import aware

    users, settings = _users()
    for user in users.all():
        row = {
            "name": user.name,
            "role": user.role,
            "regions": list(user.region_codes(settings.default_region)),
            "created_at": aware(user.created_at).isoformat(),
            "revoked_at": aware(user.revoked_at).isoformat() if user.revoked_at else None,
        }
        typer.echo(json.dumps(row, ensure_ascii=False))


@users_app.command("regions")
def regions(
    name: Annotated[str, typer.Argument(help="the account whose regions change")],
    region: RegionOption = None,
) -> None:
    """Set the regions an account works in (every --region given; the old ones are replaced).
    Its console sessions see the change at their next page."""
    users, settings = _users()
    if not region:
        from cur_ml.errors import AccountError

        raise AccountError("name the account's regions: --region CODE [--region CODE ...]")
    user = users.set_regions(name, _served(region, settings))
    typer.echo(f"account {user.name!r} now works in {user.regions}")


@users_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the account to end")]) -> None:
    """End an account: its token stops working and its console sessions end at once. The name
    stays taken (the corrections log refers to it)."""
    users, _settings = _users()
    user = users.revoke(name)
    typer.echo(f"account {user.name!r} revoked; its sessions are ended")
