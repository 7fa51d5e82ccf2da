"""`deploy/cluster up|down|status` (also `python -m cur_ml.deploy`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cur_ml.deploy.config import DEFAULT_STATE_DIR, ClusterConfig, ClusterError

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="A local cluster on loopback: PostgreSQL databases, mlflow server, 2 API replicas, "
    "a worker and nginx in front, kept running by a supervisor.",
)

StateOpt = Annotated[
    Path, typer.Option("--state-dir", help="where the cluster keeps logs, caches and tokens")
]


def _ports(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r}: expected ports separated by commas") from None


def _settings(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: expected NAME=VALUE")
        found[name.strip()] = value
    return found


@app.command()
def up(
    state_dir: StateOpt = DEFAULT_STATE_DIR,
    nginx_port: Annotated[int, typer.Option(help="the load balancer (the API's address)")] = 8800,
    replica_ports: Annotated[
        str, typer.Option(help="one port per API replica, comma-separated")
    ] = "8801,8802",
    mlflow_port: Annotated[int, typer.Option(help="mlflow server")] = 8810,
    db_prefix: Annotated[
        str, typer.Option(help="databases <prefix> (store) and <prefix>_mlflow")
    ] = "cur_ml_cluster",
    pg_host: Annotated[str, typer.Option(help="PostgreSQL server (user postgres, trust)")] = (
        "127.0.0.1"
    ),
    pg_port: int = 5432,
    regions: Annotated[
        str, typer.Option(help="regions served, comma-separated; the first is the default")
    ] = "spb,krd",
    setting: Annotated[
        list[str],
        typer.Option(
            "--set", help="a further CUR_ML_* setting of every cur-ml process (repeatable)"
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    timeout: Annotated[float, typer.Option(help="seconds to wait for each stage")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON at the end")] = (
        False
    ),
) -> None:
    """Start the cluster and wait until nginx serves through every replica."""
    from cur_ml.deploy.cluster import up as bring_up

    config = ClusterConfig(
        state_dir=state_dir,
        nginx_port=nginx_port,
        replica_ports=_ports(replica_ports),
        mlflow_port=mlflow_port,
        db_prefix=db_prefix,
        pg_host=pg_host,
        pg_port=pg_port,
        regions=tuple(r.strip() for r in regions.split(",") if r.strip()),
        settings=_settings(setting),
    )
    say = (lambda m: typer.echo(m, err=True)) if as_json else typer.echo
    result = bring_up(config, timeout=timeout, say=say)
    if as_json:
        typer.echo(json.dumps(result, indent=2))


@app.command()
def down(
    state_dir: StateOpt = DEFAULT_STATE_DIR,
    purge: Annotated[
        bool, typer.Option("--purge", help="also drop the databases and remove the state dir")
    ] = False,
) -> None:
    """Stop every process (SIGTERM, then SIGKILL after its grace period)."""
    from cur_ml.deploy.cluster import down as take_down

    take_down(ClusterConfig.load(state_dir), purge=purge, say=typer.echo)


@app.command()
def status(
    state_dir: StateOpt = DEFAULT_STATE_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="for scripts")] = False,
    show_tokens: Annotated[
        bool, typer.Option("--show-tokens", help="also print the model key and the tokens")
    ] = False,
) -> None:
    """Each process: role, pid, port, alive, ready, models served; the registry's champions.
    Exits 1 when any process is not alive (or not ready)."""
    from cur_ml.deploy.status import format_status
    from cur_ml.deploy.status import status as cluster_status

    result = cluster_status(ClusterConfig.load(state_dir), show_tokens=show_tokens)
    typer.echo(json.dumps(result, indent=2) if as_json else format_status(result))
    healthy = result["processes"] and all(
        p["alive"] and p["ready"] is not False for p in result["processes"]
    )
    if not healthy:
        sys.exit(1)


# --------------------------------------------------------------------------- compose
@app.command("compose-nginx", hidden=True)
def compose_nginx() -> None:
    """Print deploy/nginx.compose.conf (the local cluster's nginx.conf for compose services)."""
    from cur_ml.deploy.nginx import render_compose_config

    typer.echo(render_compose_config(), nl=False)


@app.command("compose-env")
def compose_env(
    out: Annotated[Path, typer.Argument(help="the env file to write (mode 0600; kept if there)")],
) -> None:
    """Write fresh secrets for deploy/docker-compose.yml: the model key, the tokens and the
    PostgreSQL password (`docker compose --env-file OUT -f deploy/docker-compose.yml up`)."""
    import secrets

    from cur_ml.deploy.tokens import TOKEN_ENV

    values = {env: secrets.token_urlsafe(32) for env in TOKEN_ENV.values()}
    values["POSTGRES_PASSWORD"] = secrets.token_urlsafe(24)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ClusterError(f"{out} exists: its secrets are in use; remove it first") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.writelines(f"{name}={value}\n" for name, value in values.items())
    typer.echo(f"wrote {out} (mode 600)")


@app.command(hidden=True)
def seed(
    mlflow_url: Annotated[str, typer.Option(help="the registry (CUR_ML_MLFLOW_TRACKING_URI)")],
    regions: Annotated[str, typer.Option(help="comma-separated region codes")],
    workdir: Annotated[Path, typer.Option(help="where models are trained")] = Path("/tmp/seed"),
) -> None:
    """Compose's one-shot `seed` service: each region's demo model made champion when the
    registry has none, with this process's CUR_ML_* settings (as `up` does locally)."""
    from cur_ml.deploy import models

    for region in (r.strip() for r in regions.split(",") if r.strip()):
        models.ensure_champion(
            mlflow_url,
            region,
            env=dict(os.environ),
            workdir=workdir,
            log_dir=workdir / "logs",
            say=typer.echo,
        )


def main() -> None:
    """Entry point: a ClusterError is one line on stderr and exit 2."""
    try:
        app(standalone_mode=False, prog_name="deploy/cluster")
    except ClusterError as exc:
        typer.echo(f"cluster: error: {exc}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("cluster: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click's usage errors
        from click.exceptions import ClickException

        if isinstance(exc, ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
