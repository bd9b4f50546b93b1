"""The default card's mask limitations follow the bundle's own figures."""

from __future__ import annotations

from typing import Any

from training.recipes.default_card import _mask_limits


def _report(right: float, left: float, nih_heart: float | None) -> dict[str, Any]:
    report: dict[str, Any] = {"segmentation": {
        "right_clavicle": {"dice": right}, "left_clavicle": {"dice": left},
        "heart": {"dice": 0.93, "expert_median_area": 0.088},
    }}
    if nih_heart is not None:
        report["segmentation_unlabelled"] = {"nih-cxr14": {"heart": {"median_area": nih_heart}}}
    return report


def test_empty_clavicle_channels_are_called_unreliable() -> None:
    assert "left clavicle channel stays empty" in _mask_limits(_report(0.70, 0.02, None))[0]


def test_clavicles_below_the_target_are_called_rough() -> None:
    first = _mask_limits(_report(0.843, 0.848, None))[0]
    assert first.startswith("- Clavicle masks are rough (Dice right 0.84")


def test_clavicles_at_the_target_are_not_called_rough() -> None:
    first = _mask_limits(_report(0.869, 0.865, None))[0]
    assert "rough" not in first
    assert "Dice right 0.87, left 0.86" in first


def test_a_truncated_heart_on_adult_films_is_stated_with_both_shares() -> None:
    lines = _mask_limits(_report(0.869, 0.865, 0.054))
    assert lines[-1] == ("  On adult NIH films the heart mask is truncated: it covers a median 5.4 % of the"
                         " film against 8.8 % for the JSRT experts' hearts.")


def test_a_heart_that_keeps_its_size_on_adult_films_is_not_called_truncated() -> None:
    assert not any("truncated" in line for line in _mask_limits(_report(0.869, 0.865, 0.080)))
    assert not any("truncated" in line for line in _mask_limits(_report(0.869, 0.865, None)))
