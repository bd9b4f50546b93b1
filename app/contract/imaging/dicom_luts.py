"""Lookup tables of the grayscale and palette pipelines, read and checked against their descriptors.

A LUT is a descriptor (entries, first stored value mapped, bits per entry) plus its data. Real files
carry items whose descriptor and data are both empty (treated as no LUT at all); broken ones carry
data shorter or longer than the descriptor declares, which a lookup would index out of bounds. Both
are settled here, before any pixel is touched; a LUT that passes can be applied to any array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from app.contract.imaging.dicom_values import raw_is_empty
from app.contract.imaging.errors import InvalidDicomError

__all__ = ["Lut", "read_lut"]

_FULL_TABLE = 65536  # a descriptor's first value 0 means 2^16 entries (PS3.3 C.11.1.1)


@dataclass(frozen=True)
class Lut:
    """A validated lookup table: stored values from ``first_mapped`` on index ``table``."""

    first_mapped: int
    table: np.ndarray  # (entries,) float32
    bits: int

    @property
    def low(self) -> float:
        return float(self.table.min())

    @property
    def high(self) -> float:
        return float(self.table.max())

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Look every value up; values below the first entry take the first output, above the last
        the last (PS3.3 C.11.1.1 and C.11.2.1.1). Returns float32 of ``values``' shape."""
        last = self.first_mapped + len(self.table) - 1
        if np.issubdtype(values.dtype, np.integer):
            index = values.astype(np.int64)  # (H, W), a copy worked on in place
        else:  # clipped before the cast, so no float overflows an integer
            index = np.clip(np.rint(values), self.first_mapped, last).astype(np.int64)
        index -= self.first_mapped
        np.clip(index, 0, len(self.table) - 1, out=index)
        return self.table[index]  # (H, W) float32


def _element_value(dataset: Dataset, keyword: str, label: str) -> object | None:
    """The element's value, or None when it is absent or empty (an empty LUT element is no LUT)."""
    if raw_is_empty(dataset, keyword):
        return None
    try:
        value = dataset.get(keyword)
    except Exception:  # pydicom converts raw bytes on access; malformed ones refuse the attribute
        raise InvalidDicomError(f"{label} {keyword} is unreadable") from None
    if value is None or (isinstance(value, bytes | str | list | MultiValue) and len(value) == 0):
        return None
    return value


def _descriptor(value: object, label: str, little_endian: bool) -> tuple[int, int, int]:
    if isinstance(value, bytes) and len(value) == 6:  # ambiguous US/SS left raw
        value = list(np.frombuffer(value, dtype="<u2" if little_endian else ">u2").tolist())
    values = list(value) if isinstance(value, list | MultiValue) else [value]
    numbers = [int(v) for v in values if isinstance(v, int) and not isinstance(v, bool)]
    if len(numbers) != 3 or len(values) != 3:
        raise InvalidDicomError(f"{label} LUT Descriptor is not three integers")
    entries, first_mapped, bits = numbers
    return entries or _FULL_TABLE, first_mapped, bits


def _table(raw: object, entries: int, bits: int, label: str, little_endian: bool) -> np.ndarray:
    """LUT data as float32: integers (US/SS) or 16-bit words in the file's byte order (OW)."""
    if isinstance(raw, bytes):
        if len(raw) in (2 * entries, 2 * entries + 1) and (bits > 8 or len(raw) != entries):
            words = np.frombuffer(raw[: 2 * entries], dtype="<u2" if little_endian else ">u2")
            return words.astype(np.float32)  # (entries,)
        if bits <= 8 and len(raw) in (entries, entries + 1):  # 8-bit entries packed in OW
            return np.frombuffer(raw[:entries], dtype=np.uint8).astype(np.float32)
        count = len(raw) // (2 if bits > 8 else 1)
    else:
        values = list(raw) if isinstance(raw, list | MultiValue) else [raw]
        if len(values) == entries and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return np.asarray(values, dtype=np.float32)  # (entries,)
        count = len(values)
    raise InvalidDicomError(
        f"{label} LUT Data holds {count} entries where its LUT Descriptor declares {entries}"
    )


def read_lut(
    dataset: Dataset,
    descriptor_keyword: str,
    data_keyword: str,
    label: str,
    *,
    little_endian: bool,
    signed: bool = False,
) -> Lut | None:
    """Read one LUT (descriptor and data elements of ``dataset``); None when both are empty.

    ``signed``: the image's Pixel Representation is signed, so a first-mapped value written as an
    unsigned short above 32767 means a negative stored value (the descriptor's VR is US or SS).
    """
    raw_descriptor = _element_value(dataset, descriptor_keyword, label)
    raw_data = _element_value(dataset, data_keyword, label)
    if raw_descriptor is None and raw_data is None:
        return None
    if raw_descriptor is None:
        raise InvalidDicomError(f"{label} has LUT Data but no LUT Descriptor")
    if raw_data is None:
        raise InvalidDicomError(f"{label} has a LUT Descriptor but no LUT Data")
    entries, first_mapped, bits = _descriptor(raw_descriptor, label, little_endian)
    if not 1 <= bits <= 16:
        raise InvalidDicomError(f"{label} LUT Descriptor declares an invalid bit depth")
    if signed and first_mapped > 32767:
        first_mapped -= 65536
    table = _table(raw_data, entries, bits, label, little_endian)
    return Lut(first_mapped=first_mapped, table=table, bits=bits)
