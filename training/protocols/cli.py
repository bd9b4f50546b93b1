"""`medslip-benchmark --suite paper --data-root DIR (--bundle DIR | --checkpoint CKPT) --out DIR`.

Runs every benchmark found under --data-root (`cxr14/`, `rsna/`, `siim/`, `covidx/`, `mscxr/`, or the
other folder names of `training.protocols.datasets.DATASET_DIRS`; `--dataset NAME=DIR` points at one
elsewhere): zero-shot classification and grounding in one streamed pass per set, then data-efficient
fine-tuning (needs --checkpoint: a trained or `medslip-import-official` checkpoint). Missing sets are
skipped with the reason in the log and the report. Prompts (`--prompts`) name an entity or a free text
(`training.protocols.prompts`); MS-CXR boxes are grounded by their category's prompt and by their own
phrase through the model's text encoder. Writes `benchmark.json` and `benchmark.md`;
per-set rows in `partial/` make an interrupted run resume. Research software, not a medical device.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.evaluation.predictors import OnnxPredictor, Predictor, TorchPredictor
from training.export.bundle import load_models
from training.export.graph import ImageModelGraph
from training.host import cpu_model
from training.model.grounding import GROUNDING_METHODS, default_grounding
from training.protocols.covidx import read_covidx
from training.protocols.cxr14 import read_cxr14
from training.protocols.datasets import DATASETS, BenchmarkData, DatasetLayoutError, find_dataset_dir
from training.protocols.finetune import FinetuneSettings, run_finetune
from training.protocols.grounding import grounding_with_phrases
from training.protocols.mscxr import read_mscxr
from training.protocols.peers import PEERS
from training.protocols.prompts import PromptError, QueryPlan, entity_mapping, load_prompts, plan_queries
from training.protocols.report import write_report
from training.protocols.rsna import read_rsna
from training.protocols.siim import read_siim
from training.protocols.stream import StreamSettings
from training.protocols.zeroshot import classification_section, score_dataset

logger = logging.getLogger(__name__)

READERS: dict[str, Callable[[Path], BenchmarkData]] = {
    "cxr14": read_cxr14, "rsna": read_rsna, "siim": read_siim, "covidx": read_covidx, "mscxr": read_mscxr,
}
TASKS: tuple[str, ...] = ("zeroshot", "grounding", "finetune")
SUITES: dict[str, tuple[str, ...]] = {"paper": TASKS}


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="paper")
    parser.add_argument("--data-root", type=Path, required=True,
                        help="folder holding one folder per data set")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--bundle", type=Path, help="exported bundle folder (ONNX Runtime)")
    model.add_argument("--checkpoint", type=Path,
                       help="MeDSLIP checkpoint: trained here, or imported with medslip-import-official")
    parser.add_argument("--grounding", choices=GROUNDING_METHODS, default=None,
                        help="with --checkpoint: finding heat-map method (a bundle carries its own)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu", help="cpu | cuda (| cuda:N with --checkpoint)")
    parser.add_argument("--datasets", type=_csv, default=list(DATASETS), help="comma list (default: all)")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=DIR",
                        help="folder of one data set outside --data-root (repeatable)")
    parser.add_argument("--tasks", type=_csv, default=None,
                        help=f"comma list of {TASKS} (default: the suite's)")
    parser.add_argument("--prompts", type=Path, default=None,
                        help='JSON {dataset: {class: prompt}} overrides; a prompt is "entity:<name>" '
                             '(or a bare entity name) or "text:<free text>"')
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="decoding threads")
    parser.add_argument("--max-images", type=int, default=None,
                        help="first N films of each split (smoke runs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    FinetuneSettings.add_arguments(parser)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.datasets) - set(DATASETS))
    if unknown:
        parser.error(f"unknown data set(s) {unknown}; choose among {list(DATASETS)}")
    args.tasks = args.tasks or list(SUITES[args.suite])
    if set(args.tasks) - set(TASKS):
        parser.error(f"unknown task(s) {sorted(set(args.tasks) - set(TASKS))}; choose among {list(TASKS)}")
    return args


def _predictor(args: argparse.Namespace) -> Predictor:
    if args.bundle is not None:
        return OnnxPredictor(args.bundle, device=args.device)
    model, _ = load_models(args.checkpoint, None)
    graph = ImageModelGraph(model, None, args.grounding or default_grounding(False))
    return TorchPredictor(graph, args.checkpoint, device=args.device)


def _dataset_dirs(args: argparse.Namespace) -> dict[str, Path | None]:
    explicit = dict(item.split("=", 1) for item in args.dataset)
    return {name: Path(explicit[name]) if name in explicit else find_dataset_dir(args.data_root, name)
            for name in args.datasets}


def _load(name: str, folder: Path | None) -> tuple[BenchmarkData | None, str]:
    """The set, or None and why it is skipped (said once in the log, kept in the report)."""
    if folder is None:
        return None, "not found under --data-root"
    try:
        data = READERS[name](folder)
    except (DatasetLayoutError, OSError, KeyError) as exc:
        return None, f"not in the official layout ({exc})"
    if not data.records:
        return None, "no film of the set was found on disk"
    return data, ""


def _plans(args: argparse.Namespace, prompts: dict[str, dict[str, str]],
           predictor: Predictor) -> dict[str, QueryPlan]:
    """Every set's query rows, checked before any film is read: unknown entities, free text without a
    text encoder, and free text where fine-tuning needs an entity are refused up front."""
    plans = {name: plan_queries(prompts.get(name, {}), predictor.info.pathology) for name in args.datasets}
    texts = sorted(name for name, plan in plans.items() if plan.texts)
    if texts and predictor.info.text_encoder is None:
        raise PromptError(f"free-text prompts for {texts} need a text encoder; "
                          f"{predictor.info.name} has none")
    if "finetune" in args.tasks and args.checkpoint is not None:
        for name in args.datasets:
            entity_mapping(prompts.get(name, {}), list(prompts.get(name, {})))
    return plans


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    """Every requested task on every set found; returns the JSON report (also written under --out)."""
    prompts = load_prompts(args.prompts)
    predictor = _predictor(args)
    plans = _plans(args, prompts, predictor)
    settings = StreamSettings(batch_size=args.batch_size, workers=args.workers, progress=not args.no_progress)
    report: dict[str, Any] = {
        "schema_version": 1, "suite": args.suite,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "evaluated": {"kind": predictor.info.kind, "name": predictor.info.name,
                      "sha256": predictor.info.sha256, "text_encoder": predictor.info.text_encoder},
        "host": cpu_model(), "tasks": list(args.tasks), "notice": "research software, not a medical device",
        "datasets": {}, "zero_shot": {}, "grounding": {}, "finetune": {}, "prompts": {},
        "peers": [peer.to_dict() for peer in PEERS],
    }
    for name, folder in _dataset_dirs(args).items():
        data, reason = _load(name, folder)
        if data is None:
            logger.warning("%s skipped: %s", name, reason)
            report["datasets"][name] = {"status": "skipped", "reason": reason}
            continue
        report["datasets"][name] = {"status": "evaluated", "layout": data.layout,
                                    "split_note": data.split_note, "counts": data.counts(),
                                    "films_skipped": dict(data.skipped)}
        mapping = prompts.get(name, {})
        report["prompts"][name] = mapping
        if {"zeroshot", "grounding"} & set(args.tasks):
            rows, failed = score_dataset(predictor, data, plans[name], partial_dir=args.out / "partial",
                                         settings=settings, max_images=args.max_images)
            report["datasets"][name]["decode_failures"] = failed
            if "zeroshot" in args.tasks and data.classes:
                report["zero_shot"][name] = classification_section(rows, data.classes)
            if "grounding" in args.tasks:
                section = grounding_with_phrases(rows)
                if section is not None:
                    report["grounding"][name] = section
        if "finetune" in args.tasks:
            result = run_finetune(args, data, mapping, settings)
            if result is not None:
                report["finetune"][name] = result
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the suite; prints the Markdown report's path on stdout."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        report = run_suite(args)
    except PromptError as exc:
        raise SystemExit(f"error: {exc}") from exc
    json_path, md_path = write_report(report, args.out)
    logger.info("wrote %s and %s", json_path.name, md_path.name)
    sys.stdout.write(f"{md_path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
