"""Does a fresh evaluation of a bundle reproduce the figures its model card reports?

The card of the default bundle is rendered from ``metadata["metrics"]`` (the report of
``medslip-eval --bundle``), so re-running that evaluation and comparing the two reports figure by figure
checks every number on the card without retraining.
"""

from __future__ import annotations

import math
from typing import Any

#: Report keys that legitimately differ between runs: when and where it ran, file lists, provenance text.
IGNORED_KEYS = frozenset({"created", "manifests", "figures", "source"})
#: Absolute tolerance on float figures. ONNX Runtime kernels differ slightly between CPUs; an AUROC or
#: a Dice that moves by more than this is a different result, not rounding.
DEFAULT_TOLERANCE = 2e-3


def report_differences(expected: Any, actual: Any, *, tolerance: float = DEFAULT_TOLERANCE,
                       path: str = "") -> list[str]:
    """Every figure of ``expected`` that ``actual`` lacks or does not reproduce, as readable lines.

    Integers (counts), strings and booleans must match exactly; floats within ``tolerance``; None and NaN
    only match themselves. Keys only ``actual`` has are ignored (newer reports may add figures).
    """
    where = path or "<report>"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected a mapping, got {type(actual).__name__}"]
        problems: list[str] = []
        for key, value in expected.items():
            if key in IGNORED_KEYS:
                continue
            child = f"{path}.{key}" if path else str(key)
            if key not in actual:
                problems.append(f"{child}: missing")
                continue
            problems += report_differences(value, actual[key], tolerance=tolerance, path=child)
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        return [p for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for p in report_differences(e, a, tolerance=tolerance, path=f"{path}[{i}]")]
    if isinstance(expected, float) and not isinstance(actual, bool) and isinstance(actual, (int, float)):
        if math.isnan(expected) and math.isnan(actual):
            return []
        if abs(expected - float(actual)) <= tolerance:
            return []
        return [f"{where}: card {expected:.4f}, now {float(actual):.4f}"]
    if expected != actual or type(expected) is not type(actual):
        return [f"{where}: card {expected!r}, now {actual!r}"]
    return []
