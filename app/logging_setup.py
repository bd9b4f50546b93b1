"""Process-wide logging for medslip-serve: JSON lines (`app.contract.logformat`, the project's one format) or
plain text, stamped with the request id.

Why: log shippers parse JSON; the request id ties a client's X-Request-ID to server lines. Nothing
here logs image content or DICOM attributes, so no patient data reaches the logs.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import IO

from app.contract.logformat import JsonFormatter
from app.request_context import current_request_id

# "path/to/module.py:12: UserWarning: text", as warnings.formatwarning writes it (source line after).
_WARNING_LINE = re.compile(r"^(?P<file>.*?):(?P<line>\d+): (?P<category>\w+): (?P<text>.*)$")
# What a warning text may quote from the input: anything in quotes, and UID-like or long digit runs.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBERS = re.compile(r"\d+(?:\.\d+){2,}|\d{5,}")


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request being handled where it was emitted.

    Worker threads see the request's context (the service runs them with a copy of it), so
    warnings and log lines from decoding carry the request id too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


def redact(text: str) -> str:
    """Mask quoted values and UID-like numbers: library messages may quote header values."""
    return _NUMBERS.sub("<number>", _QUOTED.sub("<value>", text))


class WarningFilter(logging.Filter):
    """Turns a captured `warnings` message (logger py.warnings) into a structured, redacted record."""

    def filter(self, record: logging.LogRecord) -> bool:
        first_line = record.getMessage().strip().splitlines()[0] if record.getMessage().strip() else ""
        match = _WARNING_LINE.match(first_line)
        if match:
            record.category = match["category"]
            record.origin = f"{match['file'].rsplit('/', 1)[-1]}:{match['line']}"
            record.detail = redact(match["text"])
        else:
            record.detail = redact(first_line)
        record.msg, record.args = "python warning", None
        return True


def configure_logging(log_format: str, level: str, stream: IO[str] | None = None) -> None:
    """Point the root logger (and uvicorn's, and Python warnings) at stderr in the chosen format.

    Called once by main(). Every `warnings.warn` becomes one log record (logger py.warnings,
    redacted, with the request id) instead of a raw line on stderr.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(tracebacks=True))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.filters[:] = [WarningFilter()]
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Why: our middleware writes the access line (with request id and no query string).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
