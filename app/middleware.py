"""Pure-ASGI middleware: request id, streamed body limit, request metrics and one access-log line.

Why pure ASGI (not BaseHTTPMiddleware): the body limit must count bytes as they arrive, before any
route buffers them, and a pure wrapper adds no extra task per request.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLargeError, problem_response
from app.metrics import ServiceMetrics
from app.request_context import set_request_id

logger = logging.getLogger("app.access")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _route_template(scope: Scope) -> str:
    """The matched route's path template (a bounded metric label), known once routing has run."""
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    """Sets X-Request-ID, enforces max_upload_bytes while streaming, times and logs every request."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics, max_upload_bytes: int) -> None:
        self.app = app
        self._metrics = metrics
        self._limit = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = set_request_id(_header(scope, b"x-request-id"))
        start = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        self._metrics.in_flight.inc()
        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self._limit:
                self._metrics.rejections.labels(reason="payload_too_large").inc()
                response = problem_response(
                    413,
                    PayloadTooLargeError.code,
                    PayloadTooLargeError.title,
                    f"body larger than {self._limit} bytes",
                    instance=scope.get("path"),
                )
                await response(scope, receive, send_with_id)
                return
            await self.app(scope, self._limited(receive), send_with_id)
        finally:
            self._metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            endpoint = _route_template(scope)
            status = status_holder["status"]
            self._metrics.request_duration.labels(
                endpoint=endpoint, status_class=f"{status // 100}xx"
            ).observe(elapsed)
            # Why no query string: it may carry free-text findings; the path template is enough.
            logger.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "endpoint": endpoint,
                    "status": status,
                    "duration_ms": round(elapsed * 1000.0, 2),
                },
            )

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._limit:
                    raise PayloadTooLargeError(f"body larger than {self._limit} bytes")
            return message

        return counting_receive
