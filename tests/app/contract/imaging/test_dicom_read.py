"""Bounded DICOM parsing: junk of any size is refused at a cost independent of its size."""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Callable

import numpy as np
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from app.contract.imaging import ImagingError, decode_bytes
from app.contract.imaging.dicom_read import MAX_READS
from tests.support.images import dicom_bytes, gradient, make_dataset

SIZE = 16 * 1024 * 1024
DICOM = "application/dicom"


def _zeros() -> bytes:
    return bytes(SIZE)


def _preamble_then_zeros() -> bytes:
    return bytes(128) + b"DICM" + bytes(SIZE)


def _repeated_empty_element() -> bytes:
    return struct.pack("<HHI", 0x0008, 0x0000, 0) * (SIZE // 8)  # (0008,0000), length 0, again and again


def _ff_bytes() -> bytes:
    return b"\xff" * SIZE


def _undefined_length_text_element() -> bytes:
    """(0008,0008) Image Type with an undefined length: pydicom would scan 16 MiB for a delimiter."""
    return struct.pack("<HHI", 0x0008, 0x0008, 0xFFFFFFFF) + b"\x01" * SIZE


def _ascending_empty_elements() -> bytes:
    """Two million distinct, ascending, empty elements: plausible element by element, so only the
    read budget stops it (the worst case the parser has to bound)."""
    pack = struct.Struct("<HHI").pack
    elements = (pack(group, element, 0) for group in range(9, 41, 2) for element in range(1, 65536))
    return b"".join(elements)[:SIZE]


JUNK: dict[str, Callable[[], bytes]] = {
    "zeros": _zeros,
    "preamble then zeros": _preamble_then_zeros,
    "one empty element repeated": _repeated_empty_element,
    "0xFF bytes": _ff_bytes,
    "undefined length on a text element": _undefined_length_text_element,
}


def _cpu_seconds(action: Callable[[], object], repeats: int) -> float:
    """Mean CPU time of ``action`` (process time: immune to other jobs' wall-clock noise)."""
    start = time.process_time()
    for _ in range(repeats):
        with contextlib.suppress(ImagingError):
            action()
    return (time.process_time() - start) / repeats


@pytest.fixture(scope="module")
def valid_decode_seconds() -> float:
    valid = dicom_bytes(make_dataset(gradient()))  # a 64 x 64 DICOM: the cheapest real decode
    decode_bytes(valid)  # warm-up: imports and caches
    return _cpu_seconds(lambda: decode_bytes(valid), repeats=30)


@pytest.mark.parametrize("media_type", [DICOM, None], ids=["declared", "sniffed"])
@pytest.mark.parametrize("case", sorted(JUNK))
def test_junk_is_refused_for_less_than_a_tiny_valid_decode(
    case: str, media_type: str | None, valid_decode_seconds: float
) -> None:
    """16 MiB of zeros took 9 s (~4000 tiny decodes) before parsing was bounded; now it costs less
    than one decode of a 64 x 64 file. Compared as a ratio, with tenfold slack for noisy hosts."""
    body = JUNK[case]()
    with pytest.raises(ImagingError) as caught:
        decode_bytes(body, media_type)
    assert caught.value.code in ("invalid_dicom", "unsupported_media_type")

    junk_seconds = _cpu_seconds(lambda: decode_bytes(body, media_type), repeats=3)
    assert junk_seconds < 10 * valid_decode_seconds


def test_the_read_budget_bounds_the_worst_case(valid_decode_seconds: float) -> None:
    body = _ascending_empty_elements()
    with pytest.raises(ImagingError) as caught:
        decode_bytes(body, DICOM)
    assert caught.value.code == "invalid_dicom"
    assert str(MAX_READS) in caught.value.detail

    # Unbounded, this body took ~4,000 tiny decodes; the budget stops it at ~150-200.
    assert _cpu_seconds(lambda: decode_bytes(body, DICOM), repeats=1) < 1000 * valid_decode_seconds


def test_real_headers_need_a_small_fraction_of_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    data = dicom_bytes(make_dataset(gradient()))
    monkeypatch.setattr("app.contract.imaging.dicom_read.MAX_READS", MAX_READS // 100)
    assert decode_bytes(data).shape == (64, 64)

    monkeypatch.setattr("app.contract.imaging.dicom_read.MAX_READS", 5)
    with pytest.raises(ImagingError) as caught:
        decode_bytes(data)
    assert caught.value.code == "invalid_dicom"


def test_trailing_zero_padding_after_a_valid_dataset_still_decodes() -> None:
    """Some writers pad files to a block size with zeros; the dataset before them is intact."""
    for padding in (2048, SIZE):
        data = dicom_bytes(make_dataset(gradient())) + bytes(padding)
        assert decode_bytes(data).shape == (64, 64)


def test_deflate_bomb_is_refused_before_it_is_inflated(monkeypatch: pytest.MonkeyPatch) -> None:
    zeros = np.zeros((512, 512), dtype=np.uint16)
    dataset = make_dataset(zeros, transfer_syntax=DeflatedExplicitVRLittleEndian)
    data = dicom_bytes(dataset)  # 512 KiB of pixels, deflated to a few hundred bytes
    assert decode_bytes(data).shape == (512, 512)

    monkeypatch.setattr("app.contract.imaging.dicom_read.MAX_INFLATED_BYTES", 256 * 1024)
    with pytest.raises(ImagingError) as caught:
        decode_bytes(data)
    assert caught.value.code == "image_too_large"
