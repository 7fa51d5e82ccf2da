"""Headers on every answer: no MIME sniffing, and nothing kept in a cache unless it says so.

Pure ASGI (no BaseHTTPMiddleware), like the request middleware: microseconds per request.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeadersMiddleware"]

#: Added when the answer has not set them: appeals, predictions and tokens' answers are personal
#: data that no shared cache or browser history should keep; static files set their own caching.
_DEFAULTS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))


class SecurityHeadersMiddleware:
    """Adds `X-Content-Type-Options: nosniff` and `Cache-Control: no-store` to each answer
    that does not carry its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in _DEFAULTS if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
