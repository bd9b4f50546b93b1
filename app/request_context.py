"""The current request's id, carried in a ContextVar so logs and problem bodies can cite it."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

_REQUEST_ID: ContextVar[str | None] = ContextVar("medslip_request_id", default=None)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    return _REQUEST_ID.get()


def set_request_id(value: str | None) -> str:
    """Adopt a client's X-Request-ID when it is a safe token, else mint a fresh one; returns the id used."""
    request_id = value if value and _SAFE_ID.match(value) else uuid.uuid4().hex
    _REQUEST_ID.set(request_id)
    return request_id
