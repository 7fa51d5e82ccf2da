"""Shared dependencies as `Annotated` aliases: settings, the model slot, the store, roles.

They are `async def` on purpose: they never block (a store probe, at most once a second,
runs in the thread pool), and a plain `def` dependency would cost a thread-pool round trip
per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

from cur_ml.api.batcher import DirectPredictor, PredictBatcher
from cur_ml.api.errors import ApiError
from cur_ml.api.metrics import ApiMetrics
from cur_ml.api.model_slot import ModelSlot
from cur_ml.api.region_models import RegionModels
from cur_ml.auth import Authenticator, Identity
from cur_ml.auth.limits import address_key
from cur_ml.errors import ModelNotReadyError, StoreBusyError, StoreUnavailableError
from cur_ml.retrain.jobs import RetrainJobs
from cur_ml.settings import Settings
from cur_ml.store.corrections import CorrectionRepository
from cur_ml.store.health import StoreHealth
from cur_ml.store.predictions import PredictionRepository
from cur_ml.store.review import ReviewQueue
from cur_ml.store.writer import PredictionWriter

__all__ = [
    "AdminAuth",
    "CorrectionsDep",
    "MetricsDep",
    "OperatorAuth",
    "PredictAuth",
    "PredictionsDep",
    "PredictorDep",
    "RegionsDep",
    "RetrainJobsDep",
    "ReviewQueueDep",
    "SettingsDep",
    "SlotDep",
    "StoreHealthDep",
    "StoreWritable",
    "WriterDep",
    "accepted_tokens",
    "client_address",
    "predict_is_open",
    "require",
    "store_errors",
]

Role = Literal["predict", "operator", "admin"]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _slot(request: Request) -> ModelSlot:
    return request.app.state.slot


async def _regions(request: Request) -> RegionModels:
    return request.app.state.regions


async def _writer(request: Request) -> PredictionWriter:
    writer = request.app.state.writer
    if writer is None:
        raise StoreBusyError("the prediction store is not open yet")
    return writer


async def _store_health(request: Request) -> StoreHealth:
    health = request.app.state.store_health
    if health is None:
        raise StoreBusyError("the store is not open yet")
    return health


async def _store_writable(health: Annotated[StoreHealth, Depends(_store_health)]) -> None:
    """Fail fast (503 `store_unavailable`) before doing work whose answer could not be kept:
    the cached verdict, or a probe in the thread pool once it is stale."""
    ok = health.check() if health.fresh else await run_in_threadpool(health.check)
    if not ok:
        raise StoreUnavailableError("the store cannot record predictions now; retry later")


async def _metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


async def _predictor(request: Request) -> PredictBatcher | DirectPredictor:
    predictor = request.app.state.predictor
    if predictor is None:
        raise ModelNotReadyError("the service is starting")
    return predictor


def _opened(name: str) -> Callable[[Request], Awaitable[object]]:
    """Dependency on the store object `app.state.<name>` made in the lifespan."""

    async def get(request: Request) -> object:
        value = getattr(request.app.state, name, None)
        if value is None:
            raise StoreBusyError("the store is not open yet")
        return value

    get.__name__ = f"_{name}"
    return get


@contextmanager
def store_errors() -> Iterator[None]:
    """Any error of the database (down, locked, out of connections, a corrupt file, a lost
    connection) answers 503 `store_unavailable` (retry), never 500; the log has the details."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreUnavailableError(f"the store is not available: {type(exc).__name__}") from exc


SettingsDep = Annotated[Settings, Depends(_settings)]
SlotDep = Annotated[ModelSlot, Depends(_slot)]
WriterDep = Annotated[PredictionWriter, Depends(_writer)]
StoreHealthDep = Annotated[StoreHealth, Depends(_store_health)]
StoreWritable = Annotated[None, Depends(_store_writable)]
MetricsDep = Annotated[ApiMetrics, Depends(_metrics)]
PredictorDep = Annotated[PredictBatcher | DirectPredictor, Depends(_predictor)]
RegionsDep = Annotated[RegionModels, Depends(_regions)]
CorrectionsDep = Annotated[CorrectionRepository, Depends(_opened("corrections"))]
PredictionsDep = Annotated[PredictionRepository, Depends(_opened("predictions"))]
ReviewQueueDep = Annotated[ReviewQueue, Depends(_opened("review_queue"))]
RetrainJobsDep = Annotated[RetrainJobs, Depends(_opened("retrain_jobs"))]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer TOKEN`")
_ENV = {"predict": "CUR_ML_PREDICT_TOKEN", "operator": "CUR_ML_OPERATOR_TOKEN"}


def accepted_tokens(settings: Settings, role: Role) -> list[SecretStr]:
    """Tokens that pass `role`: its own and the admin's (admin passes every check)."""
    own = {
        "predict": settings.predict_token,
        "operator": settings.operator_token,
        "admin": None,
    }[role]
    return [t for t in (own, settings.admin_token) if t is not None and t.get_secret_value()]


def predict_is_open(settings: Settings) -> bool:
    """Predict is open while no predict token is configured (an empty one counts as unset)."""
    token = settings.predict_token
    return token is None or not token.get_secret_value()


def client_address(request: Request) -> str | None:
    """The caller's address as uvicorn reports it: behind a proxy it trusts (127.0.0.1 by
    default, else uvicorn's FORWARDED_ALLOW_IPS), the client's from X-Forwarded-For."""
    return request.client.host if request.client is not None else None


def _too_many(wait: int) -> ApiError:
    return ApiError(
        429,
        "too_many_failures",
        f"too many failed token checks from this address or for this account; retry in {wait} s",
        {"Retry-After": str(wait)},
    )


def require(role: Role) -> Callable[..., Awaitable[Identity | None]]:
    """Dependency checking the bearer token for `role`: an environment token, or a personal
    account's (`cur-ml users add`); the identity it proves (None while predict is open).

    predict is open when CUR_ML_PREDICT_TOKEN is unset; operator and admin routes are
    disabled (403) while no token can pass them. Failed checks are limited per address and
    per account (429 with Retry-After); a blocked address is refused before its token is
    looked at.
    """

    async def check(
        request: Request,
        settings: SettingsDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Identity | None:
        if role == "predict" and predict_is_open(settings):
            return None
        auth: Authenticator = request.app.state.auth
        if not accepted_tokens(settings, role):  # no environment token: maybe an account
            with store_errors():
                enabled = await run_in_threadpool(auth.can_pass, role)
            if not enabled:
                env = _ENV.get(role, "CUR_ML_ADMIN_TOKEN")
                raise ApiError(
                    403,
                    "route_disabled",
                    f"{role} routes are disabled: {env} is not set and no account has the "
                    f"{role} role (cur-ml users add NAME --role ...)",
                )
        if credentials is None:
            raise ApiError(
                401,
                "unauthorized",
                f"this route needs the {role} role: send 'Authorization: Bearer TOKEN'",
                {"WWW-Authenticate": "Bearer"},
            )
        address = client_address(request)
        if (wait := auth.limiter.blocked([address_key(address)])) is not None:
            raise _too_many(wait)
        identity = auth.env_identity(credentials.credentials)  # no store, no thread
        if identity is None:
            with store_errors():
                verdict = await run_in_threadpool(
                    auth.check, credentials.credentials, address=address
                )
            if verdict.retry_after is not None:
                raise _too_many(verdict.retry_after)
            identity = verdict.identity
        if identity is None or not identity.grants(role):
            raise ApiError(403, "forbidden", f"the token does not grant the {role} role")
        request.state.identity = identity
        return identity

    check.__name__ = f"require_{role}"
    check.role = role  # type: ignore[attr-defined]  # read by cur_ml.api.openapi
    return check


PredictAuth = Annotated[Identity | None, Depends(require("predict"))]
OperatorAuth = Annotated[Identity, Depends(require("operator"))]
AdminAuth = Annotated[Identity, Depends(require("admin"))]
