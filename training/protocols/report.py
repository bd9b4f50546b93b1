"""The benchmark report: `benchmark.json` (everything) and `benchmark.md` (tables laid out like the
paper's: one row per method, one AUC / F1 / ACC group per data set, peers beneath with their sources).

`render_markdown` is a pure function of the JSON report, so the table can be re-rendered from a saved
JSON and its format is pinned by a golden test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from training.protocols.datasets import DATASETS

JSON_FILE = "benchmark.json"
MARKDOWN_FILE = "benchmark.md"
NOTICE = "Research software, not a medical device: these figures are not clinical performance claims."
TITLES: dict[str, str] = {"cxr14": "CXR14", "rsna": "RSNA", "siim": "SIIM-ACR", "covidx": "COVIDx CXR-4",
                          "mscxr": "MS-CXR"}
ZERO_SHOT_SETS: tuple[str, ...] = ("cxr14", "rsna", "siim", "covidx")
DASH = "–"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _zero_shot_lines(report: Mapping[str, Any]) -> list[str]:
    zero_shot: Mapping[str, Any] = report.get("zero_shot", {})
    sets = [name for name in ZERO_SHOT_SETS if name in zero_shot]
    peers = [p for p in report.get("peers", []) if p["task"] == "zero-shot classification"]
    sets += [name for name in ZERO_SHOT_SETS if name not in sets and any(p["dataset"] == name for p in peers)]
    if not sets:
        return []
    header = ["Method", "Threshold", "Source"]
    for name in sets:
        header += [f"{TITLES[name]} AUC", "F1", "ACC"]
    name = report["evaluated"]["name"]
    rows = []
    for mode, label in (("test_chosen", "test-chosen"), ("val_chosen", "val-chosen")):
        row = [f"this run: {name}", label, "reproduced here"]
        for dataset in sets:
            mean = zero_shot.get(dataset, {}).get("mean")
            cells = [mean["auroc"], mean[mode]["f1"], mean[mode]["acc"]] if mean else [None] * 3
            row += [_fmt(value) for value in cells]
        rows.append(row)
    references: list[str] = []
    for peer in peers:
        if peer["citation"] not in references:
            references.append(peer["citation"])
        row = [peer["method"], "test-chosen", f"{peer['status']} [{references.index(peer['citation']) + 1}]"]
        for dataset in sets:
            metrics = peer["metrics"] if peer["dataset"] == dataset else {}
            row += [_fmt(metrics.get("auroc")), _fmt(metrics.get("f1")), _fmt(metrics.get("acc"))]
        rows.append(row)
    lines = ["## Zero-shot classification", "",
             "Macro means over classes. test-chosen: each class's max-F1 threshold on the test split (the "
             "original protocol); val-chosen: the max-F1 threshold of the validation split applied to test.",
             "", *_table(header, rows), ""]
    datasets = report.get("datasets", {})
    unofficial = [f"{TITLES[d]}: {datasets[d]['layout']}" for d in sets
                  if not str(datasets.get(d, {}).get("layout", "official")).startswith("official")]
    if unofficial and peers:
        lines += ["Not comparable with the peer rows, which are on the official test split: this run read "
                  + ", ".join(unofficial) + ".", ""]
    lines += [f"[{index}] {citation}" for index, citation in enumerate(references, start=1)]
    return [*lines, ""] if references else lines


def _grounding_lines(report: Mapping[str, Any]) -> list[str]:
    grounding: Mapping[str, Any] = report.get("grounding", {})
    if not grounding:
        return []
    header = ["Data set", "Class", "Regions", "Pointing game", "mIoU", "Dice", "CNR"]
    rows = []
    for dataset in DATASETS:
        section = grounding.get(dataset)
        if not section:
            continue
        parts = [(TITLES[dataset], section)]
        if section.get("phrases"):
            parts.append((f"{TITLES[dataset]} phrases", section["phrases"]))
        for title, part in parts:
            for name, summary in [*part["classes"].items(), ("all", part["all"])]:
                if summary is None:
                    continue
                rows.append([title, name, f"{summary['n']} ({summary['region']})",
                             _fmt(summary["pointing_game"]), _fmt(summary["iou"]), _fmt(summary["dice"]),
                             _fmt(summary["cnr"])])
    thresholds = ", ".join(f"{t:.1f}" for t in next(iter(grounding.values()))["thresholds"])
    phrases: list[str] = []
    if any(section.get("phrases") for section in grounding.values()):
        phrases = ["\"phrases\" rows: each region grounded by its own phrase through the text encoder; the "
                   "other rows by the class's prompt.", ""]
    return ["## Zero-shot grounding", "",
            "Finding heat maps against radiologist regions; mIoU and Dice averaged over thresholds "
            f"{thresholds} of the min-max normalised map; CNR of the normalised map inside vs outside "
            "the region.", "",
            *phrases, *_table(header, rows), ""]


def _finetune_lines(report: Mapping[str, Any]) -> list[str]:
    finetune: Mapping[str, Any] = report.get("finetune", {})
    if not finetune:
        return []
    sections = [(dataset, section) for dataset in DATASETS for section in finetune.get(dataset, {}).values()]
    fractions: list[str] = []
    for _, section in sections:
        fractions += [key for key in section["fractions"] if key not in fractions]
    header = ["Data set", "Task", "Metric", *fractions]
    rows = []
    for dataset, section in sections:
        cells = [_fmt(section["fractions"].get(key, {}).get(section["metric"])) for key in fractions]
        rows.append([TITLES[dataset], section["task"], section["metric"], *cells])
    return ["## Data-efficient fine-tuning", "",
            "Test-split figures after fine-tuning on the given fraction of the training labels "
            "(fixed seeds).",
            "", *_table(header, rows), ""]


def _dataset_lines(report: Mapping[str, Any]) -> list[str]:
    rows = []
    for dataset in DATASETS:
        info = report.get("datasets", {}).get(dataset)
        if info is None:
            continue
        if info["status"] == "skipped":
            rows.append([TITLES[dataset], "skipped", info["reason"], DASH])
        else:
            counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
            rows.append([TITLES[dataset], info["layout"], info["split_note"], counts])
    return ["## Data sets", "", *_table(["Data set", "Layout", "Split", "Films"], rows), ""]


def _per_class_lines(report: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for dataset in ZERO_SHOT_SETS:
        section = report.get("zero_shot", {}).get(dataset)
        if not section:
            continue
        rows = [[name, str(m["n_test"]), str(m["n_test_pos"]), _fmt(m["auroc"]), _fmt(m["test_chosen"]["f1"]),
                 _fmt(m["test_chosen"]["acc"]), _fmt(m["val_chosen"]["f1"]), _fmt(m["val_chosen"]["acc"])]
                for name, m in section["classes"].items()]
        header = ["Class", "Test films", "Positives", "AUC", "F1 (test-chosen)", "ACC (test-chosen)",
                  "F1 (val-chosen)", "ACC (val-chosen)"]
        lines += [f"### {TITLES[dataset]} per class", "", *_table(header, rows), ""]
    return ["## Per class", "", *lines] if lines else []


def render_markdown(report: Mapping[str, Any]) -> str:
    evaluated = report["evaluated"]
    lines = [f"# MeDSLIP benchmark: suite {report['suite']}", "", f"_{NOTICE}_", "",
             f"Evaluated: {evaluated['kind']} `{evaluated['name']}` (sha256 {evaluated['sha256'][:12]}), "
             f"{report['created']}, host {report['host']}.", ""]
    lines += _dataset_lines(report)
    lines += _zero_shot_lines(report)
    lines += _grounding_lines(report)
    lines += _finetune_lines(report)
    lines += _per_class_lines(report)
    prompts = report.get("prompts", {})
    if prompts:
        lines += ["## Prompts (class -> entity query, or text: free text through the text encoder)", ""]
        lines += [f"- {TITLES.get(d, d)}: " + ", ".join(f"{c} -> {e}" for c, e in mapping.items())
                  for d, mapping in prompts.items()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_report(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / JSON_FILE, out_dir / MARKDOWN_FILE
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, md_path
