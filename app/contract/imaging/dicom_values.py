"""Validated reads of numeric header values.

Hand-edited and broken headers carry text where a number belongs, ``NaN`` or ``1e999`` in a decimal
string, several values where one is allowed, or an element that is present with no value at all.
Each reader here returns None for an absent or empty element (an optional element without a value
is treated as absent) and refuses anything else that is not a finite number with ``invalid_dicom``
naming the attribute. A refusal never quotes the value: a header is untrusted and may hold anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from app.contract.imaging.errors import InvalidDicomError

__all__ = [
    "MAX_SEQUENCE_BYTES",
    "optional_float",
    "optional_floats",
    "optional_int",
    "raw_is_empty",
    "required_int",
    "sequence_items",
    "values_of",
]

#: A defined-length sequence is parsed only when first read, element by element. The sequences the
#: pixel pipeline reads (VOI/Modality LUT, View Code) hold a few LUTs of at most 2^16 entries; a
#: larger one is refused before pydicom spends seconds parsing it.
MAX_SEQUENCE_BYTES = 2 * 1024 * 1024
_UNDEFINED_LENGTH = 0xFFFFFFFF


def _invalid(keyword: str, what: str) -> InvalidDicomError:
    return InvalidDicomError(f"{keyword} in the image header is {what}")


def raw_is_empty(dataset: Dataset, keyword: str) -> bool:
    """True when the element is absent or was read with no value (checked before pydicom converts it:
    converting an empty ambiguous-VR element such as LUT Data can itself fail)."""
    if keyword not in dataset:
        return True
    element = dataset.get_item(Tag(keyword), keep_deferred=True)  # raw: not converted yet
    return isinstance(element, RawDataElement) and (element.length == 0 or not element.value)


def values_of(dataset: Dataset, keyword: str) -> list[object] | None:
    """The element's values as a list, or None when it is absent or has no value.

    pydicom converts a raw value on first access and may raise on malformed bytes; that is a refusal
    of the attribute, not a crash.
    """
    if raw_is_empty(dataset, keyword):
        return None
    try:
        value = dataset.get(keyword)
    except Exception:  # untrusted bytes: any conversion failure refuses the attribute
        raise _invalid(keyword, "unreadable") from None
    if value is None:
        return None
    if isinstance(value, bytes):  # an unknown VR left raw: not a number in any encoding we accept
        if not value.strip(b"\x00 "):
            return None
        raise _invalid(keyword, "not a number")
    if isinstance(value, str):
        return [value] if value.strip() else None
    if isinstance(value, MultiValue | list | tuple):
        return list(value) or None
    return [value]


def _finite(value: object, keyword: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise _invalid(keyword, "not a number") from None
    if not math.isfinite(number):
        raise _invalid(keyword, "not a finite number")
    return number


def optional_floats(dataset: Dataset, keyword: str) -> list[float] | None:
    """All values of a (possibly multi-valued) numeric element, each finite, or None when absent."""
    values = values_of(dataset, keyword)
    if values is None:
        return None
    return [_finite(value, keyword) for value in values]


def _single(values: Sequence[object], keyword: str) -> object:
    if len(values) != 1:
        raise _invalid(keyword, "not a single value")
    return values[0]


def optional_float(dataset: Dataset, keyword: str) -> float | None:
    """The single finite value of a numeric element, or None when absent or empty."""
    values = values_of(dataset, keyword)
    if values is None:
        return None
    return _finite(_single(values, keyword), keyword)


def optional_int(dataset: Dataset, keyword: str) -> int | None:
    """The single integral value of a numeric element, or None when absent or empty."""
    values = values_of(dataset, keyword)
    if values is None:
        return None
    number = _finite(_single(values, keyword), keyword)
    if not number.is_integer():
        raise _invalid(keyword, "not an integer")
    return int(number)


def required_int(dataset: Dataset, keyword: str, low: int, high: int) -> int:
    """The single integral value of a mandatory element, within [low, high]."""
    number = optional_int(dataset, keyword)
    if number is None:
        raise InvalidDicomError(f"{keyword} is missing from the image header")
    if not low <= number <= high:
        raise _invalid(keyword, f"outside {low}..{high}")
    return number


def sequence_items(dataset: Dataset, keyword: str) -> list[Dataset]:
    """The items of a sequence element; [] when absent or empty, refused when unreadable or huge."""
    if raw_is_empty(dataset, keyword):
        return []
    element = dataset.get_item(Tag(keyword), keep_deferred=True)
    if isinstance(element, RawDataElement):  # not parsed yet: its byte length is known for free
        defined_length = element.length != _UNDEFINED_LENGTH
        if defined_length and element.length > MAX_SEQUENCE_BYTES:
            raise _invalid(keyword, "implausibly large")
    try:
        value = dataset.get(keyword)
    except Exception:  # pydicom parses the raw sequence on access; malformed bytes refuse it
        raise _invalid(keyword, "unreadable") from None
    if value is None or (isinstance(value, str | bytes) and not value):
        return []
    if not isinstance(value, DicomSequence):
        raise _invalid(keyword, "not a sequence")
    return list(value)
