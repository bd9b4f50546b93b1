"""The card check: a fresh evaluation of the shipped bundle must reproduce every figure on its card."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from app.contract.bundle import resolve_default_bundle
from app.contract.locations import MODEL_STORE
from training.recipes import default_model
from training.recipes.card_check import report_differences
from training.recipes.default_card import render_default_card

SHIPPED = resolve_default_bundle(MODEL_STORE)  # the shipped default model

CARD: dict[str, Any] = {
    "created": "2026-11-25T11:02:39+00:00",
    "manifests": ["/old/work/covid.jsonl"],
    "n_images": 259,
    "classification": {"all": {"pneumonia": {"n_pos": 177, "auroc": 0.9602, "balanced_threshold": None}}},
    "segmentation": {"left_lung": {"n": 32, "dice": 0.968}},
    "figures": ["roc_all.png"],
}


def test_the_same_report_reproduces() -> None:
    assert report_differences(CARD, copy.deepcopy(CARD)) == []


def test_run_details_and_figures_added_later_are_not_figures_of_the_card() -> None:
    now = {**copy.deepcopy(CARD), "created": "2026-12-01", "manifests": ["/tmp/x.jsonl"], "figures": [],
           "grounding": {"new": 1.0}}
    assert report_differences(CARD, now) == []


def test_float_noise_within_the_tolerance_is_accepted() -> None:
    now = copy.deepcopy(CARD)
    now["segmentation"]["left_lung"]["dice"] = 0.9685
    assert report_differences(CARD, now) == []


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("segmentation", "left_lung", "dice"), 0.91, "segmentation.left_lung.dice: card 0.9680, now 0.9100"),
    (("classification", "all", "pneumonia", "n_pos"), 176, "classification.all.pneumonia.n_pos: card 177"),
    (("classification", "all", "pneumonia", "balanced_threshold"), 0.5, "balanced_threshold: card None"),
    (("n_images",), 259.0, "n_images: card 259, now 259.0"),
])
def test_a_changed_figure_is_named(path: tuple[str, ...], value: object, expected: str) -> None:
    now = copy.deepcopy(CARD)
    target = now
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    problems = report_differences(CARD, now)
    assert len(problems) == 1 and expected in problems[0]


def test_a_missing_figure_is_named() -> None:
    now = copy.deepcopy(CARD)
    del now["segmentation"]["left_lung"]
    assert report_differences(CARD, now) == ["segmentation.left_lung: missing"]


def test_the_shipped_card_is_reproduced_by_its_check_command(
    shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`medslip-build-default --check`: evaluates the shipped bundle on the val splits (a few minutes)."""
    assert shared_data.is_dir()
    caplog.set_level(logging.INFO)
    code = default_model.main(["--check", "--work-dir", str(tmp_path)])
    assert code == 0, [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    report = json.loads((tmp_path / "check_bundle" / "report.json").read_text(encoding="utf-8"))
    assert report["evaluated"]["sha256"] == json.loads((SHIPPED / "metadata.json").read_text())["files"][
        "image_model.onnx"
    ]


def test_the_shipped_card_is_rendered_from_its_metadata_not_edited_by_hand() -> None:
    metadata = json.loads((SHIPPED / "metadata.json").read_text(encoding="utf-8"))
    report = {k: v for k, v in metadata["metrics"].items() if k != "source"}
    card = render_default_card(metadata, report, "medslip-build-default")
    assert (SHIPPED / "MODEL_CARD.md").read_text(encoding="utf-8") == card
