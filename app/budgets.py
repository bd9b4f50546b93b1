"""Memory budgets shared by concurrent requests: buffered body bytes and estimated decoding bytes.

Why budgets and not only per-request limits: one 64 MiB body or one 50 Mpx image is fine, sixty of
them at once are not. A request that does not fit is refused at once (503 + Retry-After) instead of
pushing the process past its memory limit. A request that needs more than the whole budget is still
admitted when nothing else holds any, so a single large but legal request is never refused forever.
"""

from __future__ import annotations

import threading
from io import BytesIO

from PIL import Image

from app.contract.imaging import read_dicom
from app.contract.imaging.sniff import sniff_format

#: Peak resident-memory growth of decode + preprocess per image pixel, measured for 16-bit PNG
#: (14.0 B/px), 8-bit PNG and JPEG (13.1) and 16-bit uncompressed DICOM (8.2) at 5000 x 5000.
DECODE_BYTES_PER_PIXEL = 14


class ByteBudget:
    """A counter of bytes in use with a limit; thread-safe (decodes reserve from worker threads)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_use = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._in_use

    def try_acquire(self, amount: int) -> bool:
        """Reserve `amount` bytes if they fit (or nothing else is reserved); False leaves nothing reserved."""
        if amount <= 0:
            return True
        with self._lock:
            if self._in_use and self._in_use + amount > self.limit:
                return False
            self._in_use += amount
            return True

    def release(self, amount: int) -> None:
        if amount <= 0:
            return
        with self._lock:
            self._in_use = max(0, self._in_use - amount)


def _dicom_pixels(data: bytes) -> int:
    """Rows x Columns x frames x samples from the DICOM header (the pixel module's bounded parser)."""
    try:
        dataset = read_dicom(data)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        samples = int(dataset.get("SamplesPerPixel", 1) or 1)
        return int(dataset.Rows) * int(dataset.Columns) * max(1, frames) * max(1, samples)
    except Exception:  # untrusted input: unreadable headers are the decoder's to refuse
        return 0


def _raster_pixels(data: bytes) -> int:
    """Width x height from a PNG or JPEG header (Pillow opens lazily: no pixel is decompressed)."""
    try:
        with Image.open(BytesIO(data)) as image:
            width, height = image.size
            return int(width) * int(height)
    except Exception:  # untrusted input: unreadable headers are the decoder's to refuse
        return 0


def estimated_decode_bytes(data: bytes) -> int:
    """Peak memory decoding `data` will take, from its header; 0 when the header is unreadable."""
    kind = sniff_format(data)
    pixels = _raster_pixels(data) if kind in ("png", "jpeg") else _dicom_pixels(data)
    return pixels * DECODE_BYTES_PER_PIXEL
