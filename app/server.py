"""uvicorn, adapted: SIGTERM drains before the listener closes; slow request headers are cut.

Why: uvicorn stops listening the moment SIGTERM arrives, so readiness can never answer 503 while
in-flight requests finish, and it has no limit on how long request headers may take to arrive (its
keep-alive timer only runs between requests), so a client trickling header bytes holds a connection
forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.problems import PROBLEM_MEDIA_TYPE, problem_body

logger = logging.getLogger(__name__)

#: After the drain, seconds uvicorn gives the last responses (a running batch, postprocessing)
#: before it cancels them; those then get 503 shutting_down from the middleware.
FINAL_GRACE_S = 5


def _timeout_response(timeout_s: float) -> bytes:
    body = json.dumps(
        problem_body(
            408,
            "request_timeout",
            "Request headers arrived too slowly",
            f"the request headers did not arrive within {timeout_s:g} s",
        )
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        f"content-type: {PROBLEM_MEDIA_TYPE}\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def header_timeout_protocol(timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, with a timer from connection (or request) start to end of headers."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                logger.info("request headers timed out", extra={"timeout_s": timeout_s})
                self.transport.write(_timeout_response(timeout_s))
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM, runs `drain` while still serving, then shuts down as uvicorn does.

    A second SIGTERM, or SIGINT, stops at once (uvicorn's own behaviour).
    """

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[object]]) -> None:
        super().__init__(config)
        self._drain = drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        loop = self._loop
        if sig == signal.SIGTERM and loop is not None and self._drain_task is None and not self.should_exit:
            loop.call_soon_threadsafe(self._begin_drain)
            return
        super().handle_exit(sig, frame)

    def _begin_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await self._drain()
        finally:
            self.should_exit = True
