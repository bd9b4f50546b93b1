"""The request body as the route sees it: size limit, shared byte budget, time limit, hang-up watch.

Why one wrapper around ASGI `receive`: every byte of a body passes through it before any route
buffers it, so limits apply while streaming, and it is the one place that sees the client leave.
- more than `max_bytes` -> 413 payload_too_large;
- bytes beyond the shared budget of buffered bodies -> 503 upload_budget_exceeded (the declared
  Content-Length is reserved up front, so most refusals cost no read at all);
- a body not complete within `timeout_s` -> 408 request_timeout;
- once the body is complete, a watcher waits for the client to hang up and then calls `on_hangup`
  (the middleware cancels the request, so a queued job is dropped before inference).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Message, Receive

from app.budgets import ByteBudget
from app.errors import PayloadTooLargeError, RequestTimeoutError, UploadBudgetExceededError


class BodyGuard:
    """Wraps one request's `receive`; `release()` must be called when the request ends."""

    def __init__(
        self,
        receive: Receive,
        *,
        max_bytes: int,
        budget: ByteBudget,
        timeout_s: float,
        retry_after_s: int,
        on_hangup: Callable[[], None],
    ) -> None:
        self._receive = receive
        self._max_bytes = max_bytes
        self._budget = budget
        self._timeout_s = timeout_s
        self._retry_after = retry_after_s
        self._on_hangup = on_hangup
        self._received = 0
        self._reserved = 0
        self._deadline: float | None = None
        self._complete = False
        self._watcher: asyncio.Task[Message] | None = None
        self.client_gone = False

    def reserve(self, amount: int) -> None:
        """Hold `amount` more bytes of the shared budget, or refuse with 503."""
        if not self._budget.try_acquire(amount):
            raise UploadBudgetExceededError(
                "other uploads hold the buffer budget; retry shortly",
                retry_after_s=self._retry_after,
            )
        self._reserved += amount

    def release(self) -> None:
        """Give back every reserved byte and stop watching the connection."""
        self._budget.release(self._reserved)
        self._reserved = 0
        if self._watcher is not None:
            self._watcher.cancel()

    async def receive(self) -> Message:
        if self._complete:
            return await self._after_body()
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self._timeout_s
        try:
            # One timer on the loop's clock per chunk; `wait_for` would also wrap each receive in a
            # new task, twice the cost on a body that arrives in dozens of chunks.
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise RequestTimeoutError(f"the body did not arrive within {self._timeout_s:g} s") from None
        if message["type"] == "http.disconnect":
            self.client_gone = True
            return message
        if message["type"] == "http.request":
            self._count(len(message.get("body", b"")))
            if not message.get("more_body", False):
                self._complete = True
                self.watch()
        return message

    def _count(self, size: int) -> None:
        self._received += size
        if self._received > self._max_bytes:
            raise PayloadTooLargeError(f"body larger than {self._max_bytes} bytes")
        if self._received > self._reserved:
            self.reserve(self._received - self._reserved)

    def watch(self) -> None:
        """After the body: notice a hang-up while the request is being served."""
        if self._complete and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.client_gone = True
            self._on_hangup()
        return message

    async def _after_body(self) -> Message:
        """A later `receive` (the app listening for a disconnect) shares the watcher's one read."""
        self.watch()
        watcher = self._watcher
        assert watcher is not None
        try:
            return await asyncio.shield(watcher)
        except asyncio.CancelledError:
            if watcher.cancelled():  # released: the request is over
                return {"type": "http.disconnect"}
            raise
