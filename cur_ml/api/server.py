"""`cur-ml serve`: make sure a model exists, migrate the store, run uvicorn."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from cur_ml.api.logs import log_config
from cur_ml.api.startup import announce_exposure, check_exposure, listening_socket
from cur_ml.errors import ModelError
from cur_ml.settings import Settings
from cur_ml.store import make_engine, upgrade

__all__ = ["serve"]

log = logging.getLogger(__name__)


def _export(settings: Settings) -> None:
    """Hand the settings to worker processes, which build theirs from CUR_ML_* variables."""
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        key = f"CUR_ML_{name.upper()}"
        if value is None:
            os.environ.pop(key, None)
        elif isinstance(value, SecretStr):
            os.environ[key] = value.get_secret_value()
        elif isinstance(value, list | tuple | dict | set):
            os.environ[key] = json.dumps(
                value if not isinstance(value, set) else sorted(value), default=str
            )
        else:
            os.environ[key] = str(value)


@contextmanager
def _worker_metrics(directory: Path | None) -> Iterator[Path]:
    """PROMETHEUS_MULTIPROC_DIR of the workers, empty at start (files of an earlier run would
    add to this one's counts): `directory`, or a temporary one removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="cur-ml-metrics-")) if directory is None else directory
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)  # read by prometheus-client in workers
    try:
        yield path
    finally:
        if directory is None:
            shutil.rmtree(path, ignore_errors=True)


def serve(
    settings: Settings | None = None,
    model_dir: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    allow_open_predict: bool = False,
) -> None:
    """Serve `model_dir` (default: the default model, trained on the demo data if missing).

    Refused first, in one line: predict open on a non-loopback address (unless
    `allow_open_predict`), a port in use. Blocks until the server stops (Ctrl-C /
    SIGTERM: requests in flight finish, recorded predictions are flushed).
    """
    settings = settings or Settings()
    given = {"host": host, "port": port, "workers": workers}
    updates = {name: value for name, value in given.items() if value is not None}
    if allow_open_predict:
        updates["allow_open_predict"] = True
    settings = settings.model_copy(update=updates)
    check_exposure(settings)
    with listening_socket(settings.host, settings.port) as sock:
        # port 0: the one the system chose, for the URL printed and the workers' settings
        _serve(settings.model_copy(update={"port": sock.getsockname()[1]}), model_dir, sock)


def _serve(settings: Settings, model_dir: Path | None, sock: socket.socket) -> None:
    """`serve` once its address is settled: the store, the model, then uvicorn on `sock`."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    engine = make_engine(settings.database_url)
    with engine.connect():  # the store down or not a database: one line, before anything runs
        pass
    # Here, not at the top: the checks above fail without importing scikit-learn (seconds).
    from cur_ml.model.bundle import MANIFEST_NAME, read_manifest
    from cur_ml.model.signing import model_key, verify_manifest

    key = model_key(settings, create=True)  # a short key is one line here, not a 503 later
    updates: dict[str, object] = {}
    if model_dir is not None:
        model_dir = Path(model_dir).resolve()
        if not (model_dir / MANIFEST_NAME).is_file():
            raise ModelError(f"no model at {model_dir}: {MANIFEST_NAME} is missing")
        updates["model_dir"] = model_dir
    if not settings.model_uri:
        for region in settings.all_regions():
            if model_dir is None or region != settings.region:
                _ensure_demo_model(
                    settings.for_region(region), key, default=region == settings.region
                )
    if not settings.model_uri:  # an unsigned model is refused now, in one line
        served = model_dir if model_dir is not None else settings.model_dir
        verify_manifest(read_manifest(served), key, served / MANIFEST_NAME)
    settings = settings.model_copy(update=updates)
    logging.config.dictConfig(log_config(settings.log_level, settings.log_json))
    announce_exposure(settings, log)

    app = None
    if settings.workers <= 1:
        from cur_ml.api.main import create_app

        app = create_app(settings)
        app.state.slot.load_in_background()  # overlaps with the migrations and uvicorn's start
    upgrade(engine)  # once here, so workers starting together never race on the schema
    engine.dispose()

    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{shown}:{settings.port}"
    print(f"cur-ml: serving {settings.model_dir} on {url} (docs: {url}/docs)", flush=True)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_config": log_config(settings.log_level, settings.log_json),
        "access_log": False,  # the app logs each request itself, with its request id
        "server_header": False,
        "timeout_graceful_shutdown": 30,
    }
    try:  # uvicorn serves on `sock` (what uvicorn.run does after binding its own)
        if app is not None:
            uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock])
        else:
            _export(settings)
            # One set of metrics: every worker writes its values where /metrics reads them all.
            with _worker_metrics(settings.metrics_dir):
                config = uvicorn.Config(
                    "cur_ml.api.main:create_app", factory=True, workers=settings.workers, **common
                )
                Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it has handled
        pass


def _ensure_demo_model(settings: Settings, key: bytes, *, default: bool) -> None:
    """Train a region's model on its demo data once, when it has no model (registered as its
    first champion). The default region must have one; another region without a model or
    demo data is served 503 until one is trained."""
    from cur_ml.model.bundle import MANIFEST_NAME

    if (settings.model_dir / MANIFEST_NAME).is_file():
        return
    if not default and not settings.demo_data.is_file():
        print(
            f"cur-ml: region {settings.region} has no model at {settings.model_dir} (nor demo "
            "data): its appeals are answered 503 until one is trained",
            file=sys.stderr,
        )
        return
    from cur_ml.model.training import ensure_default_model
    from cur_ml.tracking import record_run

    print(
        f"cur-ml: no model at {settings.model_dir}; training region {settings.region}'s model "
        f"on {settings.demo_data} (once)",
        file=sys.stderr,
    )
    model, _ = ensure_default_model(
        settings.model_dir,
        settings.demo_data,
        params=settings.training_params(),
        show_progress=False,
        key=key,
    )
    # The first champion is an MLflow run like every later one.
    record_run(
        settings,
        kind="train-default",
        model=model,
        model_dir=settings.model_dir,
        metrics=model.manifest["metrics"],
        aliases=("champion",),
    )
