"""Hand-made AUROC drift figures, in the shape `training.export.int8_measure.measure_drift` writes them."""

from typing import Any


def auroc_figures(delta: float | None, n_pos: int = 1) -> dict[str, Any]:
    """One finding's AUROC figures: fp32 0.8 and int8 0.8 + `delta` (None: not measurable)."""
    int8 = None if delta is None else 0.8 + delta
    return {"n": 4, "n_pos": n_pos, "fp32": 0.8, "int8": int8, "delta": delta}
