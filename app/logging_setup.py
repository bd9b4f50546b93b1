"""Process-wide logging for medslip-serve: JSON lines (or plain text) stamped with the request id.

Why: log shippers parse JSON; the request id ties a client's X-Request-ID to server lines. Nothing
here logs image content or DICOM attributes, so no patient data reaches the logs.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from app.request_context import current_request_id

# LogRecord attributes that are not `extra` fields (color_message: uvicorn's ANSI-coloured duplicate).
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line with time, level, logger, message, request_id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id:
            payload["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            payload["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            if request_id is None:
                # Outside a request (start-up, shutdown) the traceback holds no patient data and is
                # what an operator needs; inside one, exception text could echo input, so only the type.
                payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def configure_logging(log_format: str, level: str) -> None:
    """Point the root logger (and uvicorn's) at stderr in the chosen format; called once by main()."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Why: our middleware writes the access line (with request id and no query string).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
