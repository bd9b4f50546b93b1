"""Structured JSON logs. Callers pass only hashed identifiers in `extra`; this module never sees UIDs."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, ClassVar

# Attributes every LogRecord has; anything else came from `extra=` and is emitted as a field.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: machine-parsable for log shippers, grep-able for humans."""

    default_fields: ClassVar[tuple[str, ...]] = ("time", "level", "logger", "message")

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # Only the exception type: messages of third-party exceptions may quote UIDs.
            payload["exc_type"] = record.exc_info[0].__name__
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Route all logs to stderr as JSON; silence libraries that log identifiers in clear.

    pynetdicom logs SOP Instance UIDs at INFO and uvicorn's access log prints request paths
    (which carry Study Instance UIDs for POST /studies/{uid}), so both are capped at WARNING.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library warnings can quote header values (highdicom warns with the patient's name): never log them.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.CRITICAL)
    for noisy in ("pynetdicom", "uvicorn.access", "httpx", "httpcore", "highdicom", "pydicom", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
