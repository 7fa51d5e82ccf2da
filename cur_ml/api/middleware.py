"""One ASGI middleware around every request: request id, body limit, metrics, access log, 500s.

Pure ASGI (no BaseHTTPMiddleware) to keep the per-request cost in microseconds.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cur_ml.api.errors import ApiError
from cur_ml.api.logs import request_id_var, request_started_var
from cur_ml.api.metrics import ApiMetrics

__all__ = ["RequestContextMiddleware"]

log = logging.getLogger("cur_ml.access")
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestContextMiddleware:
    """Tags each request with an id (X-Request-ID, echoed or made), limits its body, times it.

    An exception nothing else handled becomes a 500 JSON answer with the request id,
    logged with its traceback.
    """

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = request_id_var.set(rid)
        started = time.perf_counter()
        request_started_var.set(started)
        state: dict[str, Any] = {"status": 500, "sent": False, "received": 0}
        rid_header = (b"x-request-id", rid.encode("ascii"))
        limit = self.max_body_bytes

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["sent"] = message["status"], True
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    raise ApiError(413, "payload_too_large", f"body larger than {limit} bytes")
            return message

        try:
            length = _content_length(scope)
            if length is not None and length > limit:
                await self._reply(
                    send_wrapper, 413, "payload_too_large", f"body larger than {limit} bytes", rid
                )
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if not state["sent"]:
                await self._reply(
                    send_wrapper, 500, "internal_error", "internal error; quote the request id", rid
                )
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            status = state["status"]
            self.metrics.observe_request(template, scope["method"], status, elapsed)
            log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={"route": template, "status": status, "duration_ms": round(elapsed * 1e3, 3)},
            )
            request_id_var.reset(token)

    @staticmethod
    async def _reply(send: Send, status: int, error: str, message: str, rid: str) -> None:
        body = json.dumps(
            {"error": error, "message": message, "detail": [], "request_id": rid}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
