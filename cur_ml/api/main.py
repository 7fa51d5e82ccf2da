"""The FastAPI app: wiring only (state, middleware, error handlers, routers, lifespan)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from cur_ml.api.batcher import DirectPredictor, PredictBatcher
from cur_ml.api.errors import install_error_handlers
from cur_ml.api.headers import SecurityHeadersMiddleware
from cur_ml.api.lane_process import ProcessRunner
from cur_ml.api.lanes import LargeLane
from cur_ml.api.metrics import ApiMetrics
from cur_ml.api.middleware import RequestContextMiddleware
from cur_ml.api.model_slot import ModelSlot
from cur_ml.api.openapi import install_openapi
from cur_ml.api.region_models import RegionModels, RegionServing
from cur_ml.api.routers import (
    admin_labels,
    admin_retrain,
    corrections,
    health,
    metrics,
    model,
    predict,
    predictions,
    review,
)
from cur_ml.auth import Authenticator
from cur_ml.console import router as console_router
from cur_ml.console.session import console_sessions
from cur_ml.model.signing import model_key
from cur_ml.retrain.jobs import RetrainJobs
from cur_ml.settings import Settings
from cur_ml.store import PredictionRepository, PredictionWriter, StoreHealth, make_engine, upgrade
from cur_ml.store.corrections import CorrectionRepository
from cur_ml.store.review import ReviewQueue

__all__ = ["create_app"]

log = logging.getLogger(__name__)

DESCRIPTION = """
Сервис маршрутизации обращений граждан: по тексту обращения определяет
**категорию**, **причину**, **срочность** и **ответственное ведомство**, срок ответа,
нужна ли проверка оператором и какие слова обращения повлияли на решение.

Каждый ответ записывается с `prediction_id`, на который ссылаются исправления операторов
(`POST /v1/corrections`); очередь проверки — `GET /v1/review-queue`; переобучение на
исправлениях — `POST /v1/admin/retrain`.

Доступ: `Authorization: Bearer TOKEN`; роли `predict`, `operator`, `admin`
(токены задаются переменными `CUR_ML_PREDICT_TOKEN`, `CUR_ML_OPERATOR_TOKEN`,
`CUR_ML_ADMIN_TOKEN`, или это личные токены операторов и администраторов:
`cur-ml users add`; автор исправления — владелец личного токена). После
`CUR_ML_AUTH_FAILURE_LIMIT` неверных токенов (по умолчанию 5 за минуту) с одного адреса или
для одной учётной записи — 429 с `Retry-After`.
"""


def _version() -> str:
    try:
        return version("cur-ml")
    except PackageNotFoundError:
        return "0"


def _registry_resolver(settings: Settings):
    """Serve CUR_ML_MODEL_URI (`models:/cur-ml-{region}@champion`) through the model directory, its
    cache: re-resolved on every load, downloaded only when the alias moved."""
    uri = settings.model_uri
    if not uri:
        return None
    from cur_ml.retrain.champion import resolve_source

    return lambda: resolve_source(uri, settings)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start: model load (in the background), schema migrations, the store (writer,
    repositories, retrain jobs), the request coalescer and its large lane, the model watcher.

    Stop (after uvicorn has let requests in flight finish): the watcher, the coalescer,
    then the writer drains its queue, so no prediction is lost.
    """
    settings: Settings = app.state.settings
    slot: ModelSlot = app.state.slot
    started = datetime.now(UTC)
    slot.load_in_background()  # overlaps with the migrations; /readyz says when it is done
    engine = make_engine(settings.database_url)
    upgrade(engine)
    prediction_repo = PredictionRepository(engine)
    health = StoreHealth(engine, ttl=settings.store_check_seconds)
    writer = PredictionWriter(
        prediction_repo,
        max_pending=settings.store_queue_size,
        batch_rows=settings.store_batch_rows,
        health=health,
    ).start()
    app.state.store_health = health
    app.state.writer = writer
    app.state.predictions = prediction_repo
    app.state.corrections = CorrectionRepository(engine)
    app.state.review_queue = ReviewQueue(engine)
    app.state.auth = Authenticator.on_store(settings, engine)  # personal accounts, limits
    app.state.sessions = console_sessions(settings, engine)

    def serve_promoted(region: str | None = None) -> None:
        """A promoted challenger: in service here at once (other workers: by polling)."""
        serving = regions.peek(region or settings.default_region)
        if serving is not None:
            serving.slot.load()

    jobs = RetrainJobs(settings, engine, on_promoted=serve_promoted)
    jobs.abandon_stale(started_before=started)  # runs a dead process left `running`
    app.state.retrain_jobs = jobs
    sys.setswitchinterval(settings.gil_switch_interval)
    regions: RegionModels = app.state.regions
    default = regions.add(_serving(app, settings, slot))
    app.state.predictor = default.predictor
    stop_sweeper = threading.Event()
    regions.watch_idle(stop_sweeper)
    try:
        yield
    finally:
        stop_sweeper.set()
        regions.close()
        writer.close()
        engine.dispose()
        app.state.metrics.close()
        log.info("stopped", extra={"predictions_written": writer.written})


def _serving(app: FastAPI, settings: Settings, slot: ModelSlot) -> RegionServing:
    """A region's predictor around its slot, and the slot's watchers started (its directory;
    with a registry URI, where the region's alias points)."""
    metrics: ApiMetrics = app.state.metrics
    large = LargeLane(
        slot.require,
        min_chars=settings.large_request_chars,
        chunk_chars=settings.large_chunk_chars,
        max_waiting=settings.large_queue,
        runner=ProcessRunner(key=partial(model_key, settings))
        if settings.large_lane_process
        else None,
        directory=lambda: slot.directory,
        on_request=metrics.observe_large,
    )
    predictor = (
        PredictBatcher(
            slot.require,
            max_appeals=settings.max_batch,
            on_batch=metrics.observe_merge,
            large=large,
        )
        if settings.coalesce_predictions
        else DirectPredictor(slot.require, large=large)
    )
    predictor.start()
    slot.watch(settings.model_poll_seconds)
    if settings.model_uri:  # a registry alias moved by a worker elsewhere
        from cur_ml.retrain.champion import registry_version_of

        uri = settings.model_uri
        slot.watch_source(
            settings.registry_poll_seconds, lambda: registry_version_of(uri, settings)
        )
    return RegionServing(settings.region, slot, predictor)


def _slot(settings: Settings, metrics: ApiMetrics) -> ModelSlot:
    """The model slot of the region `settings` are scoped to (not loaded yet)."""
    return ModelSlot(
        settings.model_dir,
        on_swap=lambda routing_model: metrics.model_loaded(routing_model.version),
        on_failure=metrics.model_failed,
        resolve=_registry_resolver(settings),
        key=partial(model_key, settings),  # every load verifies the manifest's signature
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for `settings` (read from CUR_ML_* when not given); nothing loads until start."""
    settings = settings or Settings()
    api_metrics = ApiMetrics()
    app = FastAPI(
        title="cur-ml",
        version=_version(),
        summary="Маршрутизация обращений граждан: тема, срочность, ведомство",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = api_metrics
    app.state.writer = None
    app.state.store_health = None
    app.state.predictor = None
    # The store objects (made in the lifespan; shared with the operator console).
    app.state.predictions = None
    app.state.corrections = None
    app.state.review_queue = None
    app.state.retrain_jobs = None
    app.state.auth = Authenticator.on_store(settings, None)  # environment tokens until then
    app.state.sessions = None
    # The default region's slot exists from the start (/readyz, the routes of one model);
    # other regions' are made by `regions` on their first request.
    app.state.slot = slot = _slot(settings, api_metrics)
    app.state.regions = RegionModels(
        settings, lambda scoped: _serving(app, scoped, _slot(scoped, api_metrics))
    )
    api_metrics.watch(
        "cur_ml_store_pending_rows",
        "Predictions waiting to be written to the store.",
        lambda: app.state.writer.pending if app.state.writer else 0,
        multiprocess_mode="livesum",
    )
    api_metrics.watch(
        "cur_ml_store_written_rows",
        "Predictions written to the store since start.",
        lambda: app.state.writer.written if app.state.writer else 0,
        multiprocess_mode="livesum",
    )
    api_metrics.watch(
        "cur_ml_store_available",
        "1 while the store takes writes (the last verdict; /readyz probes it).",
        lambda: 1.0 if app.state.store_health and app.state.store_health.available else 0.0,
    )
    api_metrics.watch(
        "cur_ml_model_ready", "1 once a model is loaded.", lambda: 1.0 if slot.ready else 0.0
    )
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware, metrics=api_metrics, max_body_bytes=settings.max_body_bytes
    )
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: its 413s and 500s get them too
    for module in (
        predict,
        corrections,
        review,
        predictions,
        model,
        admin_retrain,
        admin_labels,
        health,
        metrics,
    ):
        app.include_router(module.router)
    app.include_router(console_router)  # operator console: HTML pages under /console
    install_openapi(app)  # the document of this app's settings, errors as they are sent
    return app
