"""int8 drift against fp32 (AUROC per finding, probabilities, heat maps) and the rule that bounds it."""


import numpy as np
import pytest

from tests.support.int8_drift import auroc_figures
from training.export.int8_measure import decide, measure_drift


def test_drift_figures_on_a_hand_made_case() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]], dtype=np.float32)  # (N, Qp)
    maps = np.zeros((4, 2, 2, 2), dtype=np.float32)
    maps[:, :, 0, 0] = 1.0
    reference = {"pathology_probs": probs, "pathology_maps": maps}
    swapped = maps.copy()
    swapped[:, 1] = 0.0
    swapped[:, 1, 1, 1] = 1.0  # the second query's map moves to an orthogonal pixel: cosine 0
    # finding "normal" (column 0): fp32 ranks the positives (rows 0, 2) first; int8 ranks one negative first.
    int8_probs = probs.copy()
    int8_probs[1, 0] = 0.8
    quantised = {"pathology_probs": int8_probs, "pathology_maps": swapped}
    labels = [{"normal": 1}, {"normal": 0}, {"normal": 1}, {}]
    drift = measure_drift(reference, quantised, labels, ["normal", "pneumonia"], ["normal", "pneumonia"])
    assert drift["auroc"]["normal"] == {"n": 3, "n_pos": 2, "fp32": 1.0, "int8": 0.5, "delta": -0.5}
    assert drift["auroc"]["pneumonia"] == {"n": 0, "n_pos": 0, "fp32": None, "int8": None, "delta": None}
    assert drift["max_abs_auroc_delta"] is None  # a finding it could not measure
    assert drift["pathology_probs_max_abs_diff"] == pytest.approx(0.6)
    assert drift["pathology_maps_mean_cosine"] == pytest.approx(0.5)
    assert drift["n_images"] == 4
    measured = measure_drift(reference, quantised, labels, ["normal", "pneumonia"], ["normal"])
    assert measured["max_abs_auroc_delta"] == pytest.approx(0.5)


def test_decision_rule_bounds_every_calibrated_finding_and_the_maps() -> None:
    within = {"auroc": {"a": auroc_figures(0.005), "b": auroc_figures(-0.004)},
              "pathology_maps_mean_cosine": 0.99}
    assert decide(within) == []
    over = {"auroc": {"a": auroc_figures(0.001), "b": auroc_figures(-0.006)}}
    assert [reason.split(":")[0] for reason in decide(over)] == ["b"]
    unmeasured = decide({"auroc": {"a": auroc_figures(None, n_pos=0)}})
    assert unmeasured[0].startswith("a: AUROC drift not measurable")
    assert decide({"auroc": {}, "pathology_maps_mean_cosine": 0.9})[0].startswith("heat-map mean cosine")
