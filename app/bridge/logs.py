"""Structured JSON logs in the project's one format (`app.contract.logformat`). Callers pass only hashed
identifiers in `extra`; this module never sees UIDs."""

from __future__ import annotations

import logging
import sys

from app.contract.logformat import JsonFormatter


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
