"""The Markdown report: a golden file pins the paper-style layout; the JSON round-trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training.protocols.peers import PEERS
from training.protocols.report import render_markdown, write_report

GOLDEN = Path(__file__).with_name("golden_report.md")


def _metrics(auroc: float | None, f1: float | None, acc: float, n: int, pos: int) -> dict[str, Any]:
    return {"n_test": n, "n_test_pos": pos, "n_val": 10, "auroc": auroc,
            "test_chosen": {"threshold": 0.5, "f1": f1, "acc": acc},
            "val_chosen": {"threshold": 0.6, "f1": None if f1 is None else f1 / 2, "acc": acc * 0.9}}


def _grounding(n: int, region: str) -> dict[str, Any]:
    return {"region": region, "n": n, "pointing_game": 0.5, "iou": 0.12345, "dice": 0.2, "cnr": 1.25,
            "n_cnr": n, "heat_ratio": 1.4}


def sample_report() -> dict[str, Any]:
    """A fixed report exercising every section (numbers are made up for the layout only)."""
    return {
        "schema_version": 1, "suite": "paper", "created": "2026-01-02T03:04:05+00:00",
        "evaluated": {"kind": "bundle", "name": "medslip-cxr/9.9.9", "sha256": "0123456789abcdef" * 4},
        "host": "Example CPU", "tasks": ["zeroshot", "grounding", "finetune"],
        "datasets": {
            "cxr14": {"status": "evaluated", "layout": "official (Data_Entry_2017.csv)",
                      "split_note": "test = test_list.txt", "counts": {"test": 20, "train": 70, "val": 10}},
            "rsna": {"status": "skipped", "reason": "not found under --data-root"},
            "siim": {"status": "evaluated", "layout": "official (train-rle.csv)", "split_note": "split files",
                     "counts": {"test": 5, "train": 8, "val": 2}},
        },
        "zero_shot": {
            "cxr14": {"mean": {"auroc": 0.7, "test_chosen": {"f1": 0.3, "acc": 0.8},
                               "val_chosen": {"f1": 0.2, "acc": 0.85}},
                      "classes": {"Atelectasis": _metrics(0.65, 0.25, 0.7, 20, 4),
                                  "Hernia": _metrics(None, None, 1.0, 20, 0)}},
            "siim": {"mean": {"auroc": 0.75, "test_chosen": {"f1": 0.5, "acc": 0.6},
                              "val_chosen": {"f1": None, "acc": None}},
                     "classes": {"Pneumothorax": _metrics(0.75, 0.5, 0.6, 5, 2)}},
        },
        "grounding": {
            "cxr14": {"thresholds": [0.1, 0.2, 0.3, 0.4, 0.5], "classes": {"Mass": _grounding(3, "box")},
                      "all": _grounding(3, "box")},
            "siim": {"thresholds": [0.1, 0.2, 0.3, 0.4, 0.5],
                     "classes": {"Pneumothorax": _grounding(2, "mask")}, "all": _grounding(2, "mask")},
            "mscxr": {"thresholds": [0.1, 0.2, 0.3, 0.4, 0.5],
                      "classes": {"Edema": _grounding(4, "box")}, "all": _grounding(4, "box"),
                      "phrases": {"thresholds": [0.1, 0.2, 0.3, 0.4, 0.5],
                                  "classes": {"Edema": _grounding(4, "box")}, "all": _grounding(4, "box")}},
        },
        "finetune": {
            "siim": {"classification": {"task": "classification", "metric": "auroc",
                                        "fractions": {"1%": {"auroc": 0.6}, "10%": {"auroc": 0.7},
                                                      "100%": {"auroc": 0.8}}},
                     "segmentation": {"task": "segmentation", "metric": "dice",
                                      "fractions": {"1%": {"dice": 0.1}, "10%": {"dice": 0.2},
                                                    "100%": {"dice": None}}}},
        },
        "prompts": {"cxr14": {"Atelectasis": "atelectasis", "Hernia": "hernia"},
                    "siim": {"Pneumothorax": "text:air in the pleural space"}},
        "peers": [peer.to_dict() for peer in PEERS],
    }


def test_markdown_matches_the_golden_layout() -> None:
    assert render_markdown(sample_report()) == GOLDEN.read_text(encoding="utf-8")


def test_every_peer_row_names_its_source_and_status() -> None:
    markdown = render_markdown(sample_report())
    for index, peer in enumerate(PEERS, start=1):
        assert f"| {peer.method} | test-chosen | {peer.status} [{index}] |" in markdown
        assert f"[{index}] {peer.citation}" in markdown
        assert peer.status in {"copied from paper", "reproduced by others"} and peer.citation.count("http")


def test_written_json_renders_the_same_markdown(tmp_path: Path) -> None:
    json_path, md_path = write_report(sample_report(), tmp_path)
    assert render_markdown(json.loads(json_path.read_text(encoding="utf-8"))) == md_path.read_text(
        encoding="utf-8")
