"""One JSON log format for every process: the service and the PACS bridge write the same fields."""

from __future__ import annotations

import io
import json
import logging
import sys

from app.bridge import logs as bridge_logs
from app.contract.logformat import LOG_FIELDS, JsonFormatter
from app.logging_setup import RequestIdFilter


def _record(**extra: object) -> logging.LogRecord:
    try:
        raise ValueError("Doe^Jane 1.2.840.99")
    except ValueError:
        record = logging.LogRecord(
            "medslip.x", logging.ERROR, __file__, 1, "failed %s", ("step",), sys.exc_info()
        )
    record.__dict__.update(extra)  # what `extra=` does
    return record


def test_line_starts_with_the_shared_fields_then_request_id_and_extras() -> None:
    payload = json.loads(JsonFormatter().format(_record(request_id="r-1", instance="abc", sizes=[1, 2])))
    assert list(payload)[: len(LOG_FIELDS)] == list(LOG_FIELDS)
    assert payload["message"] == "failed step" and payload["level"] == "ERROR"
    assert payload["request_id"] == "r-1" and payload["instance"] == "abc" and payload["sizes"] == [1, 2]
    assert payload["exc_type"] == "ValueError" and "exc" not in payload


def test_traceback_only_outside_requests_and_only_when_asked() -> None:
    with_tb = JsonFormatter(tracebacks=True)
    assert "Doe" in json.loads(with_tb.format(_record()))["exc"]  # start-up failure: the operator needs it
    assert "exc" not in json.loads(with_tb.format(_record(request_id="r-2")))  # inside a request: type only
    assert "Doe" not in JsonFormatter().format(_record())


def test_service_and_bridge_use_the_one_formatter() -> None:
    assert bridge_logs.JsonFormatter is JsonFormatter
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(tracebacks=True))
    handler.addFilter(RequestIdFilter())
    handler.handle(logging.LogRecord("medslip.y", logging.INFO, __file__, 1, "started", None, None))
    assert list(json.loads(stream.getvalue()))[: len(LOG_FIELDS)] == list(LOG_FIELDS)
