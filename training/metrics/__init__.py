"""Evaluation metrics in numpy/scikit-learn: no torch, so they run on ONNX outputs as well."""

from training.metrics.classification import (
    ClassMetrics,
    accuracy_at_threshold,
    auroc,
    classification_metrics,
    finite_mean,
    max_f1,
    reliability,
    threshold_at_sensitivity,
)
from training.metrics.grounding import (
    DEFAULT_THRESHOLDS,
    GroundingScores,
    box_to_mask,
    contrast_to_noise,
    grounding_scores,
    heat_in_region_ratio,
    heat_outside_share,
    iou_dice_over_thresholds,
    minmax_normalise,
    pointing_game,
)
from training.metrics.segmentation import dice, iou, segmentation_scores

__all__ = [
    "DEFAULT_THRESHOLDS",
    "ClassMetrics",
    "GroundingScores",
    "accuracy_at_threshold",
    "auroc",
    "box_to_mask",
    "classification_metrics",
    "contrast_to_noise",
    "dice",
    "finite_mean",
    "grounding_scores",
    "heat_in_region_ratio",
    "heat_outside_share",
    "iou",
    "iou_dice_over_thresholds",
    "max_f1",
    "minmax_normalise",
    "pointing_game",
    "reliability",
    "segmentation_scores",
    "threshold_at_sensitivity",
]
