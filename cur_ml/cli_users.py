"""`cur-ml users ...`: personal accounts of operators and admins (add, list, revoke)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

__all__ = ["users_app"]

users_app = typer.Typer(
    no_args_is_help=True, help="Personal accounts: each operator signs in with their own token."
)


def _users():
    from cur_ml.settings import Settings
    from cur_ml.store import make_engine, upgrade
    from cur_ml.store.users import UserRepository

    engine = make_engine(Settings().database_url)
    with engine.connect():  # the store down or not a database: one line, before alembic logs
        pass
    upgrade(engine)
    return UserRepository(engine)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="the person's name, as corrections will show it")],
    role: Annotated[str, typer.Option("--role", help="operator or admin")] = "operator",
) -> None:
    """Make an account and print its token, once: the store keeps only a hash of it. Give the
    token to the person; they sign in to the console with it or send it as a bearer token."""
    user, token = _users().add(name, role)
    typer.echo(f"account {user.name!r} ({user.role}) added; its token (shown only now):", err=True)
    typer.echo(token)


@users_app.command("list")
def list_() -> None:
    """Every account (revoked ones too), one JSON object a line: name, role, created, revoked."""
    from cur_ml.store.db import aware

    for user in _users().all():
        row = {
            "name": user.name,
            "role": user.role,
            "created_at": aware(user.created_at).isoformat(),
            "revoked_at": aware(user.revoked_at).isoformat() if user.revoked_at else None,
        }
        typer.echo(json.dumps(row, ensure_ascii=False))


@users_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the account to end")]) -> None:
    """End an account: its token stops working and its console sessions end at once. The name
    stays taken (the corrections log refers to it)."""
    user = _users().revoke(name)
    typer.echo(f"account {user.name!r} revoked; its sessions are ended")
