"""Pure-ASGI middleware: request id, guarded body, in-flight count, request metrics, one access-log line.

Why pure ASGI (not BaseHTTPMiddleware): the body limits must count bytes as they arrive, before any
route buffers them (app/body_guard.py), and a pure wrapper adds no extra task per request.

Outcomes: a client that hangs up is recorded as 499 (client_closed_request), logged once at INFO,
never as a server error; while it waits after its upload, the request is cancelled so its queued job
is dropped before inference. A request cancelled by the server's shutdown gets 503 shutting_down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.body_guard import BodyGuard
from app.budgets import ByteBudget
from app.drain import InFlight
from app.errors import PayloadTooLargeError, ServiceError, ShuttingDownError
from app.metrics import ServiceMetrics
from app.problems import CLIENT_CLOSED_CODE, CLIENT_CLOSED_STATUS, domain_error_response
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


@dataclass(frozen=True)
class BodyLimits:
    """What every request body is held to (see app/body_guard.py)."""

    max_bytes: int
    budget: ByteBudget
    timeout_s: float
    retry_after_s: int


@dataclass
class _Exchange:
    """What the middleware learns about one request while it runs."""

    status: int = 500
    started: bool = False
    complete: bool = False
    hung_up: bool = False


class RequestContextMiddleware:
    """Sets X-Request-ID, guards the body, counts in-flight requests, times and logs every request."""

    def __init__(
        self, app: ASGIApp, *, metrics: ServiceMetrics, limits: BodyLimits, in_flight: InFlight
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._limits = limits
        self._in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = set_request_id(_header(scope, b"x-request-id"))
        start = time.perf_counter()
        exchange = _Exchange()
        task = asyncio.current_task()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status, exchange.started = int(message["status"]), True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                exchange.complete = True  # before sending: a hang-up noticed after this is no news
            await send(message)

        def on_hangup() -> None:
            if not exchange.complete and task is not None:
                exchange.hung_up = True
                task.cancel()

        limits = self._limits
        guard = BodyGuard(
            receive,
            max_bytes=limits.max_bytes,
            budget=limits.budget,
            timeout_s=limits.timeout_s,
            retry_after_s=limits.retry_after_s,
            on_hangup=on_hangup,
        )
        self._metrics.in_flight.inc()
        self._in_flight.enter()
        try:
            refusal = self._refuse_up_front(scope, guard)
            self._metrics.budget_in_use.labels(budget="upload").set(limits.budget.in_use)
            if refusal is not None:
                response = domain_error_response(refusal, instance=scope.get("path"), metrics=self._metrics)
                await response(scope, receive, send_with_id)
                return
            try:
                await self.app(scope, guard.receive, send_with_id)
            except asyncio.CancelledError:
                if exchange.started or task is None:
                    raise
                task.uncancel()
                if exchange.hung_up:
                    self._metrics.rejections.labels(reason=CLIENT_CLOSED_CODE).inc()
                else:  # the server is stopping: say so instead of a bare 500
                    cut = ShuttingDownError(
                        "the service stopped before this request finished; retry on another replica",
                        retry_after_s=limits.retry_after_s,
                    )
                    response = domain_error_response(cut, instance=scope.get("path"), metrics=self._metrics)
                    await response(scope, receive, send_with_id)
        finally:
            guard.release()
            self._metrics.budget_in_use.labels(budget="upload").set(limits.budget.in_use)
            self._in_flight.leave()
            self._metrics.in_flight.dec()
            self._log(scope, exchange, guard.client_gone, time.perf_counter() - start)

    def _refuse_up_front(self, scope: Scope, guard: BodyGuard) -> ServiceError | None:
        """Refuse on the declared Content-Length alone: too large, or beyond the buffer budget."""
        declared = _header(scope, b"content-length")
        if declared is None or not declared.isdigit():
            return None
        size = int(declared)
        if size > self._limits.max_bytes:
            return PayloadTooLargeError(f"body larger than {self._limits.max_bytes} bytes")
        try:
            guard.reserve(size)
        except ServiceError as exc:
            return exc
        return None

    def _log(self, scope: Scope, exchange: _Exchange, client_gone: bool, elapsed: float) -> None:
        status = exchange.status
        if exchange.hung_up or (client_gone and not exchange.complete):
            status = CLIENT_CLOSED_STATUS  # whatever was (not) sent, nobody received it
        endpoint = _route_template(scope)
        self._metrics.request_duration.labels(endpoint=endpoint, status_class=f"{status // 100}xx").observe(
            elapsed
        )
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
