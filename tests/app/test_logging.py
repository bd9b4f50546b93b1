"""Python warnings become redacted JSON log lines carrying the request id, from worker threads too."""

from __future__ import annotations

import io
import json
import logging
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from PIL import Image

from app.logging_setup import configure_logging, redact
from app.request_context import set_request_id
from tests.support.service import running_app

UID = "1.2.826.0.1.3680043.8.498.12345"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """configure_logging into a buffer, with Python's warning machinery restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("py.warnings").filters[:])
    stream = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        configure_logging("json", "INFO", stream=stream)
        try:
            yield stream
        finally:
            logging.captureWarnings(False)
            root.handlers[:], _, logging.getLogger("py.warnings").filters[:] = saved[0], None, saved[2]
            root.setLevel(saved[1])


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_redact_masks_quoted_values_and_uids() -> None:
    assert redact(f"Invalid value for VR UI: '{UID}'") == "Invalid value for VR UI: <value>"
    assert redact(f"bad uid {UID} in header") == "bad uid <number> in header"
    assert redact("expected 2 frames") == "expected 2 frames"


def test_warning_is_one_json_line_with_the_request_id(log_stream: io.StringIO) -> None:
    set_request_id("req-42")
    warnings.warn(f"Invalid value for VR UI: '{UID}'", UserWarning, stacklevel=1)
    (record,) = _records(log_stream)
    assert record["logger"] == "py.warnings" and record["level"] == "WARNING"
    assert record["request_id"] == "req-42" and record["category"] == "UserWarning"
    assert UID not in log_stream.getvalue()
    assert record["origin"].startswith("test_logging.py:")


def _png_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


async def test_warning_in_a_decode_thread_carries_the_request_id(
    make_app: Callable[..., FastAPI], log_stream: io.StringIO
) -> None:
    async with running_app(make_app()) as client:
        response = await client.post(
            "/classify",
            content=_png_claiming(10_000, 9_000),  # Pillow warns: a possible decompression bomb
            headers={"Content-Type": "image/png", "X-Request-ID": "decode-thread"},
        )
    assert response.status_code == 413
    warned = [r for r in _records(log_stream) if r["logger"] == "py.warnings"]
    assert warned and {r["request_id"] for r in warned} == {"decode-thread"}
    assert {r["category"] for r in warned} == {"DecompressionBombWarning"}
