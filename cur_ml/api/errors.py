"""Errors at the HTTP edge: every failure answers JSON `{error, message, detail, request_id}`.

Domain errors (`cur_ml.errors`) are mapped to status codes here and nowhere else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from cur_ml.api.fields import text_problem
from cur_ml.api.logs import request_id_var
from cur_ml.errors import (
    CurMlError,
    InputError,
    ModelError,
    ModelNotReadyError,
    RegionModelMissingError,
    StoreUnavailableError,
)
from cur_ml.store.writer import StoreBusyError

__all__ = ["ApiError", "error_response", "field_name", "install_error_handlers"]

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(StarletteHTTPException):
    """An HTTP error raised at the edge (dependencies, routers) with a stable `error` code."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, message, headers)
        self.error = error


def field_name(loc: Sequence[Any]) -> str:
    """('body', 'appeals', 0, 'text') → 'appeals[0].text'."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_type_tag(part):
            out += ("." if out else "") + str(part)
    return out or "body"


_TYPE_TAG = re.compile(r"(str|int|float|bool|none|[a-z]+(-[a-z]+)+|[a-z-]+\[.*\])")


def _is_type_tag(part: Any) -> bool:
    """Pydantic names union members in locations: 'str', 'constrained-int', 'function-after[..]'."""
    return isinstance(part, str) and _TYPE_TAG.fullmatch(part) is not None


def error_response(
    status: int,
    error: str,
    message: str,
    detail: Iterable[dict[str, str]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": error,
        "message": message,
        "detail": list(detail),
        "request_id": request_id_var.get(),
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _problem(err: dict[str, Any]) -> dict[str, str]:
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    msg = text_problem(str(err.get("type")), err.get("input")) or msg
    if err.get("type") == "json_invalid":
        ctx = err.get("ctx") or {}
        loc = err.get("loc", ())
        where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
        return {"field": "body", "problem": f"not valid JSON{where}: {ctx.get('error', msg)}"}
    if tuple(err.get("loc", ())) == ("body",) and isinstance(err.get("input"), bytes):
        msg = "not read as JSON: send it with Content-Type: application/json"
    return {"field": field_name(err.get("loc", ())), "problem": msg}


def _merge(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """A value that fits no member of a union gives one error per member: one entry per field,
    and a member whose type it has ("a NUL at 3") outranks those whose type it lacks."""
    merged: dict[str, list[tuple[bool, str]]] = {}
    for err in errors:
        p = _problem(err)
        seen = merged.setdefault(p["field"], [])
        mismatch = str(err.get("type", "")).endswith("_type")
        if (mismatch, p["problem"]) not in seen:
            seen.append((mismatch, p["problem"]))
    out = []
    for field, found in merged.items():
        fitting = [msg for mismatch, msg in found if not mismatch]
        out.append({"field": field, "problem": " or ".join(fitting or [m for _, m in found])})
    return out


_BOUND_ERRORS = ("greater_than_equal", "less_than_equal", "greater_than", "less_than")


def _with_range(request: Request, err: dict[str, Any]) -> dict[str, Any]:
    """A parameter out of its range: the whole range, as the document states it (the error
    names only the bound that was crossed)."""
    loc = tuple(err.get("loc", ()))
    if err.get("type") not in _BOUND_ERRORS or len(loc) != 2 or loc[0] not in ("query", "path"):
        return err
    route = request.scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    try:
        operation = request.app.openapi()["paths"][path][request.method.lower()]
    except (KeyError, TypeError):
        return err
    for param in operation.get("parameters", []):
        schema = param.get("schema", {})
        if param.get("name") == loc[1] and {"minimum", "maximum"} <= set(schema):
            lo, hi = schema["minimum"], schema["maximum"]
            return {**err, "msg": f"{err.get('input')} is out of range: {lo} to {hi}"}
    return err


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = _merge([_with_range(request, e) for e in exc.errors()])
    head = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return error_response(422, "invalid_request", head + more, problems[:100])


def _allowed(request: Request) -> str:
    """Every method some route of this path answers (Starlette's 405 names one route's)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):  # routes of included routers too
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match is Match.PARTIAL:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    error = getattr(exc, "error", None) or _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405 and (allow := _allowed(request)):
        headers = {**(headers or {}), "Allow": allow}
        message = f"{request.method} is not allowed here; allowed: {allow}"
    detail = []
    if exc.status_code == 400:  # FastAPI could not read the body; say why
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            message = f"body is not UTF-8 text: byte {cause.start} cannot be decoded"
        elif cause is not None:
            message = f"body is not valid JSON: {cause}"
        detail = [{"field": "body", "problem": message}]
    return error_response(exc.status_code, error, message, detail, headers)


def _store_unavailable() -> JSONResponse:
    return error_response(
        503,
        "store_unavailable",
        "the store cannot answer now; retry later (the service log has the details under "
        "this request id)",
        headers={"Retry-After": "5"},
    )


async def _store(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
    """Whatever the database said (a corrupt file, a lost connection, a constraint no client
    input explains): 503, the details in the log only (they may name files and servers)."""
    log.error("store error: %s", _first_line(exc), exc_info=exc)
    return _store_unavailable()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


async def _domain(request: Request, exc: CurMlError) -> JSONResponse:
    if isinstance(exc, StoreUnavailableError):  # before its base class, StoreBusyError
        if isinstance(exc.__cause__, SQLAlchemyError):
            return await _store(request, exc.__cause__)
        return error_response(503, "store_unavailable", exc.message, headers={"Retry-After": "5"})
    if isinstance(exc, StoreBusyError):
        return error_response(503, "store_busy", exc.message, headers={"Retry-After": "1"})
    if isinstance(exc, RegionModelMissingError):  # one region without a model: say which
        log.error("%s: %s", exc.message, exc.why)
        return error_response(503, "model_unavailable", exc.message, headers={"Retry-After": "5"})
    if isinstance(exc, ModelError):
        # Why exactly (a path, a checksum) is for the log: anyone may call predict.
        log.error("no model to answer with: %s", exc.message)
        slot = getattr(request.app.state, "slot", None)
        loading = isinstance(exc, ModelNotReadyError) and (slot is None or slot.error is None)
        message = (
            "the model is still loading; retry shortly"
            if loading
            else "the model cannot answer now; the service log says why under this request id"
        )
        return error_response(503, "model_unavailable", message, headers={"Retry-After": "1"})
    indexes = getattr(exc, "indexes", None)
    if indexes is not None:  # appeals the model failed on (logged with the traceback)
        detail = [
            {"field": f"appeals[{i}].text", "problem": "this appeal could not be processed"}
            for i in indexes
        ]
        message = "; ".join(f"{d['field']}: {d['problem']}" for d in detail[:3])
        return error_response(422, "unprocessable_appeal", message, detail)
    if isinstance(exc, InputError):
        return error_response(422, "invalid_request", exc.message)
    log.error("unmapped domain error: %s", exc.message)
    return error_response(500, "internal_error", "internal error; quote the request id")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(CurMlError, _domain)  # type: ignore[arg-type]
    app.add_exception_handler(SQLAlchemyError, _store)  # type: ignore[arg-type]
