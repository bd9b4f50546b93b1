"""Decode + preprocess for the model, in the caller's thread or in a small process pool.

Why a process pool (`MEDSLIP_DECODE_PROCESSES`, default 1): the JPEG 2000 (OpenJPEG through Pillow or
pylibjpeg), JPEG-LS and JPEG Lossless (GDCM) decoders hold the GIL for the whole decode, so in a
worker thread they stall the event loop, and with it the batcher's releases and the model thread's
hand-offs. Measured side by side (docs/benchmarks.md, `medslip-bench decode`): one decode process
instead of one decode thread kept the event loop's 99th-percentile lateness at ~1 ms instead of ~70
ms and gave the model 16 % more calls per second. Two processes on the same 2-core host took that
CPU back from the model, hence a small pool, sized below the core count.

The worker thread that calls `PoolDecoder.decode` still holds the request's decode-memory budget and
waits on the process; the process returns only the model input and the non-identifying `ImageInfo`.
A worker that dies (a codec crash on hostile input) breaks the pool: it is replaced and the request
retried once; an image that breaks the fresh pool too is refused as `corrupt_image`.

Inputs whose decode needs no GIL-holding codec (`decodes_without_gil`: PNG and JPEG, which Pillow
decodes in C with the GIL released, and DICOM with native, uncompressed pixel data, which is a numpy
view) are decoded in the calling worker thread instead (`MEDSLIP_DECODE_INLINE`, default on): for them
the hop to the process, pickling the upload there and the model input back, cost more than the decode
itself (docs/benchmarks.md, "Decode routing").
"""

from __future__ import annotations

import logging
import multiprocessing
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

import numpy as np

from app.contract.imaging import (
    CorruptImageError,
    ImageInfo,
    Letterbox,
    PreprocessingSpec,
    decode_bytes,
    quiet_pydicom_value_messages,
)
from app.contract.imaging.reduced import set_j2k_threads
from app.contract.imaging.sniff import sniff_format
from app.logging_setup import configure_logging
from app.postprocess import png_base64
from app.request_context import current_request_id, set_request_id

__all__ = [
    "NATIVE_TRANSFER_SYNTAXES",
    "DecodeRequest",
    "ModelInput",
    "PoolDecoder",
    "RenderedFilm",
    "decode_for_model",
    "decodes_without_gil",
    "transfer_syntax",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeRequest:
    """Everything a decode needs, picklable: the upload and the service's settings for it."""

    data: bytes
    media_type: str | None
    max_pixels: int
    allow_lateral: bool
    min_long_side: int | None  # None: full resolution (MEDSLIP_REDUCED_DECODE=false)
    spec: PreprocessingSpec
    render: bool = False  # also return the decoded film as a PNG (the request's input_image)


@dataclass(frozen=True)
class RenderedFilm:
    """The decoded film as the model saw it before the letterbox, as an 8-bit gray PNG (base64)."""

    png_base64: str
    width: int
    height: int


@dataclass(frozen=True)
class ModelInput:
    info: ImageInfo
    tensor: np.ndarray  # (3, S, S) float32, normalised
    box: Letterbox  # letterbox of the ORIGINAL rows x columns
    rendered: RenderedFilm | None = None  # only when the request asked to render


def render_film(
    pixels: np.ndarray, spec: PreprocessingSpec, known_range: tuple[float, float] | None = None
) -> RenderedFilm:
    """(H, W) decoded [0, 1] pixels -> PNG of what the letterbox receives: the washed-out stretch is
    applied as `spec.apply` applies it, so a viewer shows exactly the gray levels the model read.
    Encoded here (in the decode process) so only the compressed PNG crosses back."""
    shown, _ = spec.stretch(pixels, known_range)  # (H, W) [0, 1]
    height, width = shown.shape
    return RenderedFilm(png_base64(shown), width, height)


def decode_for_model(request: DecodeRequest) -> ModelInput:
    """Decode (reduced where allowed) and preprocess; raises ImagingError subclasses."""
    decoded = decode_bytes(
        request.data,
        request.media_type,
        max_pixels=request.max_pixels,
        allow_lateral=request.allow_lateral,
        min_long_side=request.min_long_side,
    )
    prepared = request.spec.apply_decoded(decoded)  # tensor (3, S, S)
    rendered = render_film(decoded.pixels, request.spec, decoded.gray_range) if request.render else None
    info = replace(decoded.info, steps=[*decoded.info.steps, *prepared.steps])  # every pixel operation
    return ModelInput(info, prepared.tensor, prepared.box, rendered)


#: Transfer syntaxes whose pixel data is stored native (no codec): implicit / explicit little endian,
#: explicit big endian.
NATIVE_TRANSFER_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"})
_META_START = 132  # 128-byte preamble + b"DICM"
_MAX_META_ELEMENTS = 32  # group 0002 holds about a dozen elements; more is not a file meta group
_LONG_LENGTH_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


def transfer_syntax(data: bytes) -> str | None:
    """The Transfer Syntax UID of a Part 10 file's meta group (always explicit VR little endian), or
    None when the bytes have no readable one. Reads at most the first few hundred bytes, with no
    parser, so routing a hostile upload costs nothing; the decoder validates the file properly."""
    offset = _META_START
    for _ in range(_MAX_META_ELEMENTS):
        if offset + 8 > len(data):
            return None
        group, element = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            return None
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_LENGTH_VRS:
            if offset + 12 > len(data):
                return None
            (length,) = struct.unpack_from("<I", data, offset + 8)
            value_at = offset + 12
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            value_at = offset + 8
        if element == 0x0010:
            value = data[value_at : value_at + length]
            return value.rstrip(b"\x00 ").decode("ascii", errors="replace") if len(value) == length else None
        offset = value_at + length
    return None


def decodes_without_gil(data: bytes) -> bool:
    """Whether decoding `data` runs no codec that holds the GIL: PNG and JPEG (Pillow releases it
    while decoding) and DICOM with native pixel data. Everything else goes to the decode process."""
    kind = sniff_format(data)
    if kind in ("png", "jpeg"):
        return True
    return kind == "dicom" and transfer_syntax(data) in NATIVE_TRANSFER_SYNTAXES


def _in_worker(request: DecodeRequest, request_id: str | None) -> ModelInput:
    """The job a pool process runs: log lines carry the request's id, as in a worker thread."""
    set_request_id(request_id)
    return decode_for_model(request)


def _ready(_index: int) -> bool:
    return True


def _start_worker(log_format: str, log_level: str, j2k_threads: int | None = None) -> None:
    """Each process logs like the server (JSON, redacted warnings), keeps pydicom quiet about values
    and sizes its JPEG 2000 thread pool (None: as inherited)."""
    configure_logging(log_format, log_level)
    quiet_pydicom_value_messages()
    if j2k_threads is not None:
        set_j2k_threads(j2k_threads)


Job = Callable[[DecodeRequest, str | None], ModelInput]


class PoolDecoder:
    """`decode` in a process pool of `processes` workers, or in the calling thread when 0 or when
    `inline(data)` says the upload decodes without holding the GIL (None: every upload to the pool).

    `job` is what a worker runs (module level, so a process can import it); tests replace it.
    `j2k_threads` sizes each worker's JPEG 2000 thread pool (`set_j2k_threads`; None: inherited).
    """

    def __init__(
        self,
        processes: int,
        *,
        log_format: str,
        log_level: str,
        job: Job = _in_worker,
        inline: Callable[[bytes], bool] | None = None,
        j2k_threads: int | None = None,
    ) -> None:
        self.processes = processes
        self._job = job
        self._inline = inline
        self._init_args = (log_format, log_level, j2k_threads)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = self._new_pool() if processes > 0 else None

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: a fork of a process running ONNX Runtime and other threads is not safe.
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=self._init_args,
        )

    def start(self) -> None:
        """Start every worker process and import the codecs now, not on the first request."""
        if self._pool is not None:
            list(self._pool.map(_ready, range(self.processes)))

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is broken:  # the first thread to notice replaces it; the others reuse that
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                logger.warning("a decode process died: decode pool replaced")
            assert self._pool is not None
            return self._pool

    def decode(self, request: DecodeRequest) -> ModelInput:
        """Blocking: call from a worker thread. Raises ImagingError subclasses as the decoder does."""
        pool = self._pool
        if pool is None or (self._inline is not None and self._inline(request.data)):
            return decode_for_model(request)
        request_id = current_request_id()
        try:
            return pool.submit(self._job, request, request_id).result()
        except BrokenProcessPool:
            pool = self._replace(pool)
        try:
            return pool.submit(self._job, request, request_id).result()
        except BrokenProcessPool:
            self._replace(pool)
            raise CorruptImageError("the image stopped the decoder twice") from None

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
