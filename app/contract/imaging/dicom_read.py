"""Parse untrusted bytes as DICOM with bounded work, whatever their size.

pydicom parses element by element in Python, about 2 microseconds each, and ``force=True`` accepts
anything: 16 MiB of zero bytes is two million empty (0000,0000) elements and took 9 s of CPU to
refuse. Three guards keep the cost of junk independent of its size:

1. the dataset may not start with eight zero bytes (an element (0000,0000) of length 0 does not
   exist: Command Group Length holds 4 bytes), so zero-filled bodies are refused at once;
2. the top-level dataset ends at anything that cannot be an element: a run of one tag repeated many
   times (a repeating pattern of empty elements; trailing zero padding after a complete dataset is
   then simply not read), a tag in a group DICOM forbids (0001, 0003, 0005, 0007, FFFF), or an
   undefined length on an element that cannot have one (pydicom would scan the whole body for a
   delimiter);
3. pydicom gets at most ``MAX_READS`` reads from the stream: a real radiograph header needs a few
   hundred (pydicom's whole test corpus at most ~3,600), anything else is refused within about a
   hundred milliseconds.

Parser messages may quote element values (UIDs, names), so they are never passed on: a refusal says
only what kind of failure it was.
"""

from __future__ import annotations

import logging
import zlib
from io import BytesIO

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset, read_partial, read_preamble
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from app.contract.imaging.errors import ImageTooLargeError, InvalidDicomError

__all__ = ["MAX_INFLATED_BYTES", "MAX_READS", "looks_like_image_dataset", "read_dicom"]

logger = logging.getLogger(__name__)

MAX_READS = 50_000
#: 50 million 16-bit pixels (the default ``max_pixels``) plus room for the header.
MAX_INFLATED_BYTES = 128 * 1024 * 1024
_MAX_REPEATS = 8
_FORBIDDEN_GROUPS = frozenset({0x0001, 0x0003, 0x0005, 0x0007, 0xFFFF})  # PS3.5 7.1
_UNDEFINED_LENGTH = 0xFFFFFFFF
# VRs that may carry an undefined length (sequences, encapsulated pixel data, unknown).
_UNDEFINED_LENGTH_VRS = ("SQ", "UN", "OB", "OW")
_ZERO_ELEMENT = b"\x00" * 8
_IDENTIFYING_KEYWORDS = (
    "SOPClassUID",
    "Modality",
    "PixelData",
    "Rows",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)


class _ParseBudgetError(Exception):
    """The stream was read more often than any real header needs."""


class _BudgetedStream(BytesIO):
    """An in-memory stream that refuses to serve more than ``reads`` reads."""

    def __init__(self, data: bytes, reads: int) -> None:
        super().__init__(data)
        self._reads_left = reads

    def read(self, size: int | None = -1, /) -> bytes:
        self._reads_left -= 1
        if self._reads_left < 0:
            raise _ParseBudgetError
        return super().read(size)


class _RepeatGuard:
    """pydicom ``stop_when`` hook: stops at a long run of one tag (and, for the File Meta group,
    at the first element of another group)."""

    def __init__(self, group: int | None = None) -> None:
        self._group = group
        self._last: int | None = None
        self._repeats = 0

    def __call__(self, tag: BaseTag, vr: str | None, length: int) -> bool:
        self._repeats = self._repeats + 1 if tag == self._last else 0
        self._last = int(tag)
        if self._repeats > _MAX_REPEATS or tag.group in _FORBIDDEN_GROUPS:
            return True
        if length == _UNDEFINED_LENGTH and not _may_have_undefined_length(tag, vr):
            return True
        return self._group is not None and tag.group != self._group


def _may_have_undefined_length(tag: BaseTag, vr: str | None) -> bool:
    """Explicit VR: the VR says; implicit VR: the dictionary's VR (private tags may be sequences)."""
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return True
    return any(allowed in vr for allowed in _UNDEFINED_LENGTH_VRS)


def _dataset_start(data: bytes) -> tuple[int, bool]:
    """Offset of the dataset proper (after the preamble and File Meta group, if any), and whether
    the File Meta group declares a deflated dataset."""
    stream = _BudgetedStream(data, MAX_READS)
    read_preamble(stream, force=True)
    meta = read_dataset(stream, is_implicit_VR=False, is_little_endian=True, stop_when=_RepeatGuard(group=2))
    deflated = str(meta.get("TransferSyntaxUID", "")) == DeflatedExplicitVRLittleEndian
    return stream.tell(), deflated


def _check_inflated_size(deflated: memoryview) -> None:
    """Inflate into a bounded buffer (then dropped): a bomb is refused before pydicom inflates it."""
    inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(deflated, MAX_INFLATED_BYTES + 1)
    if len(inflated) > MAX_INFLATED_BYTES:
        raise ImageTooLargeError(f"the deflated dataset inflates to more than {MAX_INFLATED_BYTES} bytes")


def _parse(data: bytes) -> Dataset:
    start, deflated = _dataset_start(data)
    if data[start : start + len(_ZERO_ELEMENT)] == _ZERO_ELEMENT:
        raise InvalidDicomError("the data are zero bytes where the DICOM dataset should start")
    if deflated:
        _check_inflated_size(memoryview(data)[start:])
    return read_partial(_BudgetedStream(data, MAX_READS), stop_when=_RepeatGuard(), force=True)


def read_dicom(data: bytes) -> Dataset:
    """Parse DICOM bytes, with or without the 128-byte preamble, into a dataset (bounded work)."""
    try:
        dataset = _parse(data)
    except (InvalidDicomError, ImageTooLargeError):
        raise
    except _ParseBudgetError:
        raise InvalidDicomError(
            f"the data do not parse as DICOM (more than {MAX_READS} reads without a plausible header)"
        ) from None
    except Exception as exc:  # untrusted input: any parser failure is a refusal, not a crash
        logger.debug("DICOM parse failed: %s", type(exc).__name__)
        raise InvalidDicomError(f"the data do not parse as DICOM ({type(exc).__name__})") from None
    if not any(keyword in dataset for keyword in _IDENTIFYING_KEYWORDS):
        # force=True "parses" almost any bytes into nonsense elements; a real object has some of these.
        raise InvalidDicomError("the data do not parse as a DICOM object (no SOP class, modality or image)")
    return dataset


def looks_like_image_dataset(dataset: Dataset) -> bool:
    """True when a force-parsed dataset is a plausible image (used to sniff preamble-less files)."""
    return "PixelData" in dataset and "Rows" in dataset and "Columns" in dataset
