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
from starlette.exceptions import HTTPException as StarletteHTTPException

from cur_ml.api.logs import request_id_var
from cur_ml.errors import CurMlError, InputError, ModelError, StoreUnavailableError
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
    if err.get("type") == "json_invalid":
        ctx = err.get("ctx") or {}
        loc = err.get("loc", ())
        where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
        return {"field": "body", "problem": f"not valid JSON{where}: {ctx.get('error', msg)}"}
    if tuple(err.get("loc", ())) == ("body",) and isinstance(err.get("input"), bytes):
        msg = "not read as JSON: send it with Content-Type: application/json"
    return {"field": field_name(err.get("loc", ())), "problem": msg}


def _merge(problems: list[dict[str, str]]) -> list[dict[str, str]]:
    """A value that fits no member of a union gives one error per member: one entry per field."""
    merged: dict[str, list[str]] = {}
    for p in problems:
        seen = merged.setdefault(p["field"], [])
        if p["problem"] not in seen:
            seen.append(p["problem"])
    return [{"field": f, "problem": " or ".join(msgs)} for f, msgs in merged.items()]


async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = _merge([_problem(e) for e in exc.errors()])
    head = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return error_response(422, "invalid_request", head + more, problems[:100])


async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    error = getattr(exc, "error", None) or _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    detail = []
    if exc.status_code == 400:  # FastAPI could not read the body; say why
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            message = f"body is not UTF-8 text: byte {cause.start} cannot be decoded"
        elif cause is not None:
            message = f"body is not valid JSON: {cause}"
        detail = [{"field": "body", "problem": message}]
    return error_response(exc.status_code, error, message, detail, getattr(exc, "headers", None))


async def _domain(_request: Request, exc: CurMlError) -> JSONResponse:
    if isinstance(exc, StoreUnavailableError):  # before its base class, StoreBusyError
        return error_response(503, "store_unavailable", exc.message, headers={"Retry-After": "5"})
    if isinstance(exc, StoreBusyError):
        return error_response(503, "store_busy", exc.message, headers={"Retry-After": "1"})
    if isinstance(exc, ModelError):
        return error_response(503, "model_unavailable", exc.message, headers={"Retry-After": "1"})
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
