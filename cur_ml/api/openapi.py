"""The OpenAPI document of one app, as that app answers (a client generator can trust it).

FastAPI's own document says what the code declares; this one also says what the
configuration it was served under does, and what is really sent:

- every error is `ErrorBody` (`{error, message, detail: [{field, problem}], request_id}`),
  never FastAPI's `HTTPValidationError`;
- each operation lists the errors it can answer: 400 and 413 where a body is read, 422
  where anything is validated, 401/403/429/503 where a token is checked;
- security as configured: predict needs a bearer only while CUR_ML_PREDICT_TOKEN is set,
  `/metrics` only where it is locked (else, with no token to pass, the 403 it answers);
  operator and admin routes always (personal accounts pass them when the tokens are unset);
- the configurable limits of a predict request (appeals per request, characters of a text).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from cur_ml.api.deps import accepted_tokens, predict_is_open
from cur_ml.api.schemas import ErrorBody
from cur_ml.settings import Settings

__all__ = ["ROLE_ENV", "build_openapi", "install_openapi"]

#: The setting whose token opens each role's routes (the admin token passes every role).
ROLE_ENV = {
    "predict": "CUR_ML_PREDICT_TOKEN",
    "operator": "CUR_ML_OPERATOR_TOKEN",
    "admin": "CUR_ML_ADMIN_TOKEN",
    "metrics": "CUR_ML_METRICS_TOKEN",
}
_ERROR = {"$ref": "#/components/schemas/ErrorBody"}
_GENERIC = {
    "400": "Тело не читается: не UTF-8 или не JSON",
    "413": "Тело запроса больше CUR_ML_MAX_BODY_BYTES",
    "422": "Неверный ввод: поле и проблема в `detail`",
    "401": "Нет токена: нужен `Authorization: Bearer TOKEN`",
    "403": "Токен не даёт нужной роли",
    "429": "Слишком много неудачных проверок токена: повторите через `Retry-After` секунд",
    "503": "Хранилище или модель недоступны: повторите через `Retry-After` секунд",
}


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi` of this app at /openapi.json (and /docs), rebuilt when routes
    are added (FastAPI's own cache says when)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        base = FastAPI.openapi(app)
        if built.get("base") is not base:
            built["base"], built["doc"] = base, build_openapi(app, copy.deepcopy(base))
        return built["doc"]

    app.openapi = openapi  # type: ignore[method-assign]


def build_openapi(app: FastAPI, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` (FastAPI's document of `app`) made true to `app`'s settings and answers."""
    settings: Settings = app.state.settings
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _error_schemas().items():
        schemas[name] = schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for route in iter_route_contexts(app.routes):  # routes of included routers too
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = doc["paths"][route.path_format].get(method.lower())
            if operation is not None:
                _errors(operation, has_body="requestBody" in operation)
                _security(operation, _role(route.dependant), settings)
    _limits(schemas, settings)
    _served_regions(doc, settings)
    return doc


def _served_regions(doc: dict[str, Any], settings: Settings) -> None:
    """A region code is one of this deployment's regions: an enum, in bodies and parameters
    (a client generator offers the choice; anything else is the 422 naming it)."""
    served = settings.all_regions()

    def narrow(schema: dict[str, Any]) -> None:
        for part in schema.get("anyOf", [schema]):
            if part.get("type") == "string":
                part.pop("pattern", None)
                part.pop("maxLength", None)
                part["enum"] = served

    for schema in doc.get("components", {}).get("schemas", {}).values():
        if "region" in schema.get("properties", {}):
            narrow(schema["properties"]["region"])
    for operations in doc["paths"].values():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param.get("name") == "region":
                    narrow(param["schema"])


def _error_schemas() -> dict[str, Any]:
    """`ErrorBody` and the models it refers to, as components."""
    schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "ErrorBody": schema}


def _answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _errors(operation: dict[str, Any], *, has_body: bool) -> None:
    """Every 4xx/5xx is an `ErrorBody`; a body brings 400 and 413, validation 422."""
    responses = operation.setdefault("responses", {})
    needed = ["400", "413", "422"] if has_body else []
    if operation.get("parameters"):
        needed.append("422")
    for code in needed:
        responses.setdefault(code, _answer(_GENERIC[code]))
    for code, answer in responses.items():
        if not code.startswith(("4", "5")):
            continue
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        if not schema or schema.get("$ref", "").endswith("/HTTPValidationError"):
            answer["content"] = {"application/json": {"schema": _ERROR}}
            answer["description"] = _GENERIC.get(code, answer.get("description", "Ошибка"))


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _walk(sub)


def _role(dependant: Dependant) -> str | None:
    """The role a route's dependencies require (`cur_ml.api.deps.require` marks its checks)."""
    for sub in _walk(dependant):
        role = getattr(sub.call, "role", None)
        if isinstance(role, str):
            return role
    return None


def _access(role: str, settings: Settings) -> Literal["open", "bearer", "accounts", "disabled"]:
    """What the settings make of a role's routes: open to all, a token, personal accounts
    only (their token unset: enabled while an account has the role), or switched off."""
    if role == "metrics":
        if not settings.metrics_locked():
            return "open"
        tokens = [t for t in (settings.metrics_token, settings.admin_token) if t]
        return "bearer" if tokens else "disabled"
    if role == "predict":
        return "open" if predict_is_open(settings) else "bearer"
    return "bearer" if accepted_tokens(settings, role) else "accounts"  # type: ignore[arg-type]


def _security(operation: dict[str, Any], role: str | None, settings: Settings) -> None:
    """Security as the settings make it: none, a bearer token, or a route switched off."""
    responses = operation.setdefault("responses", {})
    if role is None:
        return
    access = _access(role, settings)
    if access == "open":
        operation.pop("security", None)
        responses.pop("401", None)
        responses.pop("403", None)
        why = f" ({ROLE_ENV[role]} не задан)" if role == "predict" else ""
        _note(operation, f"Открыт в этой конфигурации{why}: токен не нужен.")
        return
    env = ROLE_ENV[role]
    if access == "disabled":
        operation.pop("security", None)
        responses.pop("401", None)
        responses["403"] = _answer(f"Маршрут выключен ({env} не задан): `route_disabled`")
        _note(operation, f"Выключен: {env} не задан, всегда 403 `route_disabled`.")
        return
    operation["security"] = [{"HTTPBearer": []}]
    codes = ["401", "403"] if role == "metrics" else ["401", "403", "429", "503"]
    for code in codes:  # a role's check counts failures and may ask the store for accounts
        responses.setdefault(code, _answer(_GENERIC[code]))
    if access == "accounts":
        _note(
            operation,
            f"{env} не задан: проходят только личные токены (`cur-ml users add`); пока ни у "
            f"кого нет роли {role}, всегда 403 `route_disabled`.",
        )


def _note(operation: dict[str, Any], text: str) -> None:
    operation["description"] = f"**{text}**\n\n{operation.get('description', '')}".strip()


def _limits(schemas: dict[str, Any], settings: Settings) -> None:
    """The configured limits of a predict request, where the schema can say them."""
    for name, schema in schemas.items():
        properties = schema.get("properties", {})
        if name.startswith("PredictRequest") and "appeals" in properties:
            properties["appeals"]["maxItems"] = settings.max_batch
        if name.startswith("Appeal") and "text" in properties and "created_at" in properties:
            properties["text"]["maxLength"] = settings.max_text_chars
