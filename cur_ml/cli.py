"""The `cur-ml` command: train, predict, evaluate, serve (CONTRACT section 2)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TextIO

import typer

from cur_ml.cli_model import model_app
from cur_ml.cli_users import users_app
from cur_ml.errors import DataError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Routing of citizens' appeals: topic, urgency and responsible agency.",
)

DataOpt = Annotated[list[Path], typer.Option("--data", help="CSV / CSV.GZ / JSONL; repeatable")]
SplitOpt = Annotated[str | None, typer.Option("--split", help="keep rows whose `split` is this")]
ModelOpt = Annotated[Path, typer.Option("--model", help="model directory")]


def _region_code(value: str | None) -> str | None:
    from cur_ml.settings import REGION_CODE

    if value is not None and not REGION_CODE.match(value):
        raise typer.BadParameter(f"{value!r} is not a region code (like spb or krd)")
    return value


RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region",
        callback=_region_code,
        help="region code (its model is cur-ml-REGION in the registry; default: CUR_ML_REGION)",
    ),
]


def _fail(message: str) -> None:
    typer.echo(f"cur-ml: error: {message}", err=True)
    sys.exit(2)


def _print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2))


@app.command()
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="model directory to write")],
    split: SplitOpt = None,
    eval_split: Annotated[
        str | None,
        typer.Option("--eval-split", help="also evaluate on rows of this split of the same files"),
    ] = None,
    champion: Annotated[
        bool | None,
        typer.Option(
            "--champion/--no-champion",
            help="make it models:/cur-ml-REGION@champion (default: when --out is the region's "
            "CUR_ML_MODEL_DIR)",
        ),
    ] = None,
    region: RegionOpt = None,
) -> None:
    """Train every head and save the model with its manifest.

    Training into the served model directory puts the model in service, so it also becomes
    the registry's champion: the directory is only a cache of that alias."""
    from cur_ml.data import load_appeals
    from cur_ml.model.report import PREDICTIONS_FILE
    from cur_ml.model.training import evaluate_model, headline, train_model
    from cur_ml.settings import Settings
    from cur_ml.tracking import record_run
    from cur_ml.tracking_fields import data_input

    dataset = load_appeals(data, split=split)
    model = train_model(dataset, params=Settings().training_params())
    summary = {
        "model_version": model.version,
        "out": str(out),
        "rows": len(dataset.frame),
        "skipped": dataset.skipped,
        "training_seconds": model.manifest["training_seconds"],
    }
    inputs = [data_input(dataset.frame, data, split, "train", model.manifest["data"]["sha256"])]
    report_dir = out / "reports" / eval_split if eval_split else None
    if eval_split and report_dir is not None:
        held_out = load_appeals(data, split=eval_split)
        metrics = headline(evaluate_model(model, held_out.frame, report_dir))
        model.manifest["metrics"] = {eval_split: metrics}
        summary["metrics"] = {eval_split: metrics}
        summary["report"] = str(report_dir / "report.md")
        summary["predictions"] = str(report_dir / PREDICTIONS_FILE)
        inputs.append(data_input(held_out.frame, data, eval_split, eval_split))
    model.save(out)
    settings = Settings().for_region(region)
    summary["region"] = settings.region
    if champion is None:
        champion = out.resolve() == settings.model_dir.resolve()
    summary["champion"] = champion
    summary["mlflow"] = record_run(
        settings,
        kind="train",
        model=model,
        model_dir=out,
        metrics=model.manifest["metrics"],
        report_dir=report_dir,
        split=eval_split,
        data=inputs,
        aliases=("champion",) if champion else (),
    )
    _print_json(summary)


@contextmanager
def _open_text(path: str, mode: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdin if mode == "r" else sys.stdout
        return
    try:
        fh = open(path, mode, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot open {path}: {exc.strerror}") from exc
    with fh:
        yield fh


@app.command()
def predict(
    model: ModelOpt,
    input: Annotated[str, typer.Option("--input", help="JSON Lines of appeals, - for stdin")],
    output: Annotated[str, typer.Option("--output", help="JSON Lines out, - for stdout")] = "-",
    batch_size: Annotated[int, typer.Option(min=1)] = 1000,
    explain: Annotated[bool, typer.Option(help="add the words behind each decision")] = False,
) -> None:
    """Batch prediction: one output line per input line, in the same order."""
    from cur_ml.model import load_model
    from cur_ml.predict_io import predict_lines

    routing = load_model(model)
    with _open_text(input, "r") as src, _open_text(output, "w") as dst:
        bad = predict_lines(routing, src, dst, batch_size=batch_size, explain=explain)
    if bad:
        typer.echo(f'cur-ml: {bad} input line(s) could not be used; see their "error"', err=True)


ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="score as one channel sends appeals: portal, geo, text or social (default: all)",
    ),
]


@app.command()
def evaluate(
    model: ModelOpt,
    data: DataOpt,
    split: SplitOpt = None,
    profile: ProfileOpt = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report", help="report directory (default: MODEL_DIR/reports/<split or file>)"
        ),
    ] = None,
) -> None:
    """Print per-head figures as JSON, per input profile; write the human report of each.

    The top-level figures are those of the first profile scored (portal by default);
    `profiles` holds every profile's.
    """
    from cur_ml.data import load_appeals
    from cur_ml.model import load_model
    from cur_ml.model.report import PREDICTIONS_FILE
    from cur_ml.model.training import evaluate_model, headline
    from cur_ml.profiles import apply_profile, profile_names
    from cur_ml.settings import Settings
    from cur_ml.tracking import record_run
    from cur_ml.tracking_fields import data_input

    try:
        names = profile_names(profile)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    routing = load_model(model)
    dataset = load_appeals(data, split=split)
    where = report or model / "reports" / (split or data[0].name.split(".")[0])
    evaluated_on = ",".join(map(str, data)) + (f"@{split}" if split else "")
    per_profile = {}
    for name in names:
        report_dir = where / name
        frame = apply_profile(dataset.frame, name)
        per_profile[name] = headline(evaluate_model(routing, frame, report_dir))
        record_run(
            Settings(),
            kind="evaluate",
            model=routing,
            metrics=per_profile[name],
            report_dir=report_dir,
            tags={"evaluated_on": evaluated_on},
            split=split or "all",
            profile=name,
            data=[data_input(frame, data, split, split or "all", profile=name)],
        )
    metrics = {**per_profile[names[0]], "profile": names[0], "profiles": per_profile}
    metrics["model_version"] = routing.version
    metrics["report"] = str(where / names[0] / "report.md")
    # One row per appeal (truth, prediction, confidences, needs_review) beside each report.
    metrics["predictions"] = str(where / names[0] / PREDICTIONS_FILE)
    _print_json(metrics)


def _demo_regions(settings) -> list[str]:
    """Regions with demo data: the served ones, then every `datasets/demo_<code>` folder."""
    from cur_ml.settings import REGION_CODE, REPO_ROOT

    found = [p.name.removeprefix("demo_") for p in sorted((REPO_ROOT / "datasets").glob("demo_*"))]
    candidates = dict.fromkeys([*settings.all_regions(), *filter(REGION_CODE.match, found)])
    return [r for r in candidates if settings.for_region(r).demo_data.is_file()]


@app.command()
def quickstart(
    regions: Annotated[
        list[str] | None,
        typer.Option("--region", help="region (repeatable; default: every region with demo data)"),
    ] = None,
) -> None:
    """Train each demo region's model if missing (models/<region>), evaluate it on its demo
    dev split, and print the regions side by side.

    Its MLflow runs go to a scratch store in a temporary directory (printed), never to the
    configured one: a demo model must not become anyone's champion.
    """
    import tempfile

    from tabulate import tabulate

    from cur_ml.data import load_appeals
    from cur_ml.model.report import PREDICTIONS_FILE
    from cur_ml.model.training import ensure_default_model, evaluate_model, headline
    from cur_ml.settings import Settings
    from cur_ml.tracking import record_run
    from cur_ml.tracking_fields import data_input

    base = Settings()
    scratch = Path(tempfile.mkdtemp(prefix="cur-ml-quickstart-"))
    out: dict[str, dict] = {}
    for region in [_region_code(r) or base.region for r in regions or _demo_regions(base)]:
        settings = base.for_region(region)
        if not settings.demo_data.is_file():
            _fail(f"region {region} has no demo data at {settings.demo_data}")
        scratch_mlflow = settings.model_copy(
            update={
                "mlflow_tracking_uri": f"sqlite:///{scratch / 'mlflow.db'}",
                "mlflow_artifact_location": (scratch / "artifacts").as_uri(),
            }
        )
        model, trained = ensure_default_model(
            settings.model_dir, settings.demo_data, params=settings.training_params()
        )
        if trained:
            record_run(
                scratch_mlflow,
                kind="train-default",
                model=model,
                model_dir=settings.model_dir,
                metrics=model.manifest["metrics"],
            )
        typer.echo(
            ("trained" if trained else "loaded")
            + f" region {region}'s model {model.version} at {settings.model_dir}",
            err=True,
        )
        dev = load_appeals([settings.demo_data], split="dev")
        report_dir = settings.model_dir / "reports" / "dev"
        metrics = headline(evaluate_model(model, dev.frame, report_dir))
        record_run(
            scratch_mlflow,
            kind="evaluate",
            model=model,
            metrics=metrics,
            report_dir=report_dir,
            split="dev",
            data=[data_input(dev.frame, [settings.demo_data], "dev", "dev")],
        )
        labels = model.label_sets()
        out[region] = {
            **metrics,
            "model_version": model.version,
            "dev_rows": len(dev.frame),
            "labels": {head: len(labels[head]) for head in ("category", "reason", "agency")},
            "report": str(report_dir / "report.md"),
            "predictions": str(report_dir / PREDICTIONS_FILE),
        }
    rows = [
        [region, r["dev_rows"], *(r["labels"][h] for h in ("category", "reason", "agency"))]
        + [r[h]["accuracy"] for h in ("category", "reason", "urgency", "agency")]
        for region, r in out.items()
    ]
    header = ["region", "dev rows", "categories", "reasons", "agencies"]
    header += ["category acc", "reason acc", "urgency acc", "agency acc"]
    typer.echo(tabulate(rows, header, floatfmt=".3f"), err=True)
    if base.mlflow_enabled:
        typer.echo(
            f"MLflow runs of this quickstart (a scratch store; {base.mlflow_tracking_uri} "
            f"is untouched): mlflow ui --backend-store-uri sqlite:///{scratch / 'mlflow.db'}",
            err=True,
        )
    _print_json(out)


@app.command()
def serve(
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="model directory (default: the default model, trained on the demo data "
            "if missing)",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="default: CUR_ML_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default: CUR_ML_PORT or 8000")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="default: CUR_ML_WORKERS or 1")] = None,
    allow_open_predict: Annotated[
        bool,
        typer.Option(
            "--allow-open-predict",
            help="serve predict without a token on a non-loopback host (warned at every start; "
            "default: CUR_ML_ALLOW_OPEN_PREDICT)",
        ),
    ] = False,
) -> None:
    """Run the HTTP service (POST /v1/predict, /docs, /metrics)."""
    from cur_ml.api.server import serve as run
    from cur_ml.settings import Settings

    run(
        Settings(),
        model_dir=model,
        host=host,
        port=port,
        workers=workers,
        allow_open_predict=allow_open_predict,
    )


corrections_app = typer.Typer(no_args_is_help=True, help="Operator corrections: import history.")
app.add_typer(corrections_app, name="corrections")
app.add_typer(model_app, name="model")  # `cur-ml model sign DIR`
app.add_typer(users_app, name="users")  # `cur-ml users add|list|revoke`


def _engine(settings):
    from cur_ml.store import make_engine, upgrade

    engine = make_engine(settings.database_url)
    with engine.connect():  # the store down or not a database: one line, before alembic logs
        pass
    upgrade(engine)
    return engine


@corrections_app.command("import")
def corrections_import(
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV or JSON Lines: appeal_id, at, field, old, new (and the further columns "
            "of `cur-ml store export corrections`)"
        ),
    ],
    data: Annotated[
        list[Path],
        typer.Option(
            "--data",
            help="labelled appeals whose ids events without a prediction must name "
            "(repeatable; none: every appeal id is taken, as when restoring an export)",
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    operator: Annotated[str, typer.Option(help="recorded as the operator")] = "import",
) -> None:
    """Load correction history; events by appeal must name appeals of --data (ids must match)."""
    from dataclasses import asdict

    from cur_ml.data import load_appeals
    from cur_ml.retrain.importer import import_corrections
    from cur_ml.settings import Settings
    from cur_ml.store.corrections import CorrectionRepository

    settings = Settings()
    known: set[str] | None = None
    if data:
        dataset = load_appeals(data)
        if "id" not in dataset.frame.columns:
            raise DataError(f"{data[0]} has no 'id' column to match corrections against")
        known = set(dataset.frame["id"].astype(str))
    repo = CorrectionRepository(_engine(settings))
    summary = import_corrections(path, known, repo, operator=operator)
    _print_json(asdict(summary))


store_app = typer.Typer(no_args_is_help=True, help="The store: backups and exports.")
app.add_typer(store_app, name="store")
export_app = typer.Typer(no_args_is_help=True, help="Write what the store holds to a file.")
store_app.add_typer(export_app, name="export")
ForceOpt = Annotated[bool, typer.Option("--force", help="overwrite PATH if it exists")]


@store_app.command("backup")
def store_backup(
    path: Annotated[Path, typer.Argument(help="the file to write (refused if it exists)")],
    force: ForceOpt = False,
) -> None:
    """A consistent copy of the store, safe while the service writes (SQLite: online backup;
    PostgreSQL: pg_dump, custom format); prints what ran and how to restore."""
    from cur_ml.settings import Settings
    from cur_ml.store.backup import backup_store

    done = backup_store(Settings().database_url, path, force=force)
    if done.command:
        typer.echo(f"ran: {done.command}")
    typer.echo(f"backup: {done.path} ({done.method}, {done.size:,} bytes)")
    if done.rows:
        typer.echo("rows: " + ", ".join(f"{t} {n:,}" for t, n in done.rows.items()))
    typer.echo("to restore:\n" + "\n".join(done.restore))


@export_app.command("corrections")
def store_export_corrections(
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    out: Annotated[str, typer.Option("--out", help="file to write, - for stdout")] = "-",
    force: ForceOpt = False,
) -> None:
    """Every correction and label approval, oldest first, as `cur-ml corrections import` reads
    them: export, then import into another store, gives the same history."""
    from cur_ml.settings import Settings
    from cur_ml.store.export import export_to

    counts = export_to(Settings().database_url, out, fmt, force=force)
    where = "stdout" if out == "-" else out
    typer.echo(
        f"cur-ml: {counts['correction']} correction(s), {counts['label_approval']} label "
        f"approval(s) written to {where}",
        err=True,
    )


BaseDataOpt = Annotated[
    list[Path],
    typer.Option(
        "--base-data",
        help="labelled appeals the corrections refer to (repeatable; default CUR_ML_BASE_DATA)",
    ),
]


@app.command()
def retrain(
    base_data: BaseDataOpt = [],  # noqa: B006 - typer reads the default, never mutates it
    allow_no_match: Annotated[
        bool,
        typer.Option(
            "--allow-no-match", help="retrain even when no correction matches the base data"
        ),
    ] = False,
    queue: Annotated[
        bool, typer.Option("--queue", help="only queue the job for `cur-ml worker`")
    ] = False,
    region: RegionOpt = None,
) -> None:
    """Train a challenger on base data + corrections; promote it if the gate lets it.

    Runs here and now (or, with --queue, leaves the job to `cur-ml worker`); prints the
    job with its decision, reasons and paired tests.
    """
    from cur_ml.retrain.jobs import RetrainJobs, RetrainOptions
    from cur_ml.retrain.worker import Worker, worker_name
    from cur_ml.settings import Settings

    for path in base_data:
        if not path.is_file():
            raise DataError(f"--base-data {path}: no such file")
    settings = Settings()
    options = RetrainOptions(tuple(str(p.resolve()) for p in base_data), allow_no_match)
    engine = _engine(settings)
    if queue:
        jobs = RetrainJobs(settings, engine)
        run = jobs.start("cli", options, region=region)
        if run is None:
            current = jobs.current(region or settings.region)
            _fail(f"a retrain is already queued or running (job {current.id if current else '?'})")
        _print_json(run.to_dict())
        return
    runner = Worker(settings, engine, name=worker_name("cli"))
    done = runner.run_now("cli", options.to_dict(), region=region)
    _print_json(done.to_dict())
    if done.status == "failed":
        _fail(done.error or "retrain failed")


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="run at most one queued job, then exit (cron, tests)")
    ] = False,
) -> None:
    """Run queued retraining jobs (from the API, the console, `retrain --queue`), one at a
    time; several workers may share a store. SIGTERM / Ctrl-C: stop after the current job."""
    import logging
    import signal
    import threading

    from cur_ml.settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    engine = _engine(settings)  # a store that is down: one line, before the heavy imports
    from cur_ml.retrain.worker import Worker

    runner = Worker(settings, engine)
    stale = runner.runs.fail_stale()
    if stale:
        typer.echo(f"cur-ml: {stale} job(s) of a stopped worker marked failed", err=True)
    if once:
        done = runner.run_once()
        _print_json(done.to_dict() if done is not None else {"status": "idle", "job": None})
        if done is not None and done.status == "failed":
            _fail(done.error or "retrain failed")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        runner.serve(stop)
    except KeyboardInterrupt:
        stop.set()


#: The log level asked for on the command line (or CUR_ML_LOG_LEVEL): a failure's traceback
#: is shown at debug.
_log_level: list[str | None] = [None]


@app.callback()
def _options(
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            envvar="CUR_ML_LOG_LEVEL",
            help="debug, info, warning, error (default: CUR_ML_LOG_LEVEL or info); "
            "debug also logs the traceback of a failure",
        ),
    ] = None,
) -> None:
    if log_level is not None:
        os.environ["CUR_ML_LOG_LEVEL"] = log_level  # every command's Settings() reads it
        _log_level[0] = log_level


def main() -> None:
    """Entry point: every failure (bad argument, bad setting, store down, port taken, ...) is
    one line on stderr and a non-zero exit; the traceback goes to the debug log only."""
    from typer.exceptions import Abort, TyperException

    from cur_ml.cli_errors import one_line, report

    try:
        code = app(standalone_mode=False)  # command-line errors come back to be shown here
    except TyperException as exc:  # a bad argument or option (typer's click exceptions)
        if type(exc).__name__ == "NoArgsIsHelpError":  # typer has shown the help already
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        _fail(one_line(exc.format_message()) + hint)
    except (Abort, KeyboardInterrupt):
        _fail("interrupted")
    except Exception as exc:
        _fail(report(exc, _log_level[0]))
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
