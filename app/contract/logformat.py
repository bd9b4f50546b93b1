"""The project's one JSON log line: every process (service, decode workers, PACS bridge) writes it.

Why one format: a log pipeline parses every process's lines with one rule. Each line is one JSON
object with the fields `LOG_FIELDS` (time in UTC ISO-8601 with milliseconds, level name, logger
name, rendered message), then `request_id` when the record carries one, then every `extra=` field,
then `exc_type` for a logged exception. Standard library only, so any part of the tree can use it.

Patient data: callers pass only patient-free (or hashed) values in `extra`. An exception's text can
quote its input, so only its type is written; `tracebacks=True` (the service, whose start-up and
shutdown failures happen outside any request) adds the traceback to records that carry no request id.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

#: The fields every line starts with, in this order.
LOG_FIELDS: tuple[str, ...] = ("time", "level", "logger", "message")

# LogRecord attributes that are not `extra` fields (color_message: uvicorn's ANSI-coloured duplicate;
# taskName: Python 3.12's asyncio task name; request_id: written explicitly after the base fields).
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
    "request_id",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for the fields)."""

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__()
        self._tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            payload["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            payload["exc_type"] = record.exc_info[0].__name__
            if self._tracebacks and not request_id:
                payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
