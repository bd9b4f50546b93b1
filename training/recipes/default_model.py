"""`medslip-build-default`: the one command that rebuilds the default model shipped in `model_store/`.

Stages, each skipped when its output exists (so an interrupted build resumes where it stopped):

1. pretrain MeDSLIP on covid-chestxray notes + Kermany template reports (`training/configs/default_cxr.yaml`);
2. fine-tune the segmentation head AND its own copy of the trunk on JSRT organ masks + covid lung masks
   (`training/configs/finetune_seg_jsrt.yaml` with the overrides in `SEG_OVERRIDES`);
3. build JSONL manifests of covid-chestxray, kermany-pediatric and jsrt-scr;
4. evaluate the checkpoints on the validation splits (operating points = max-F1 thresholds);
5. export the ONNX bundle with those operating points (fp16 weights, float32 I/O: half the size);
6. evaluate the exported bundle on ONNX Runtime (the artefact users get) and write its model card.

Every figure in the card comes from stage 6, so re-running this command reproduces the card.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from training.bundle import read_metadata, verify_bundle, write_metadata
from training.data import build_manifest
from training.data.sources.registry import shared_data_dir
from training.recipes.default_card import render_default_card

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
PRETRAIN_CONFIG = REPO / "training" / "configs" / "default_cxr.yaml"
SEG_CONFIG = REPO / "training" / "configs" / "finetune_seg_jsrt.yaml"
#: The shipped segmentation head was trained with its own (unfrozen) trunk: frozen from-scratch features
#: are too coarse for lung borders. The exported graph then carries two ResNet-18 trunks (+11 MB).
SEG_OVERRIDES = (
    "task.freeze_trunk=false",
    "schedule.epochs=10",
    "run.amp=bf16",
    "run.amp_on_cpu=true",
    "run.channels_last=true",
)
TEXT_ENCODER = REPO / "model_store" / "text-encoders" / "all-minilm-l6-v2" / "1"
#: manifest name -> (build_manifest source kind, folder under the shared data)
SOURCES = {"covid": ("covid", "covid-chestxray"), "kermany": ("kermany", "kermany-pediatric"),
           "jsrt": ("jsrt", "jsrt-scr")}


def _run(stage: str, entry: Callable[[list[str] | None], int], argv: list[str]) -> None:
    logger.info("stage %s: %s", stage, " ".join(argv))
    code = entry(argv)
    if code != 0:
        raise SystemExit(f"stage {stage} failed with exit code {code}")


def pretrain(work: Path) -> Path:
    from training import train  # noqa: PLC0415

    out = work / "pretrain"
    final = out / "checkpoint_final.pt"
    if not final.exists():
        argv = ["--config", str(PRETRAIN_CONFIG), "--override", f"run.out_dir={out}"]
        if (out / "checkpoint_last.pt").exists():
            argv += ["--resume", str(out / "checkpoint_last.pt")]
        _run("pretrain", train.main, argv)
    return final


def finetune_segmentation(work: Path, init: Path) -> Path:
    from training import finetune_seg  # noqa: PLC0415

    out = work / "segmentation"
    final = out / "segmentation_final.pt"
    if not final.exists():
        argv = ["--config", str(SEG_CONFIG), "--init", str(init), "--override", f"run.out_dir={out}"]
        for override in SEG_OVERRIDES:
            argv += ["--override", override]
        _run("segmentation", finetune_seg.main, argv)
    return final


def manifests(work: Path) -> list[Path]:
    shared = shared_data_dir()
    paths = []
    for name, (kind, folder) in SOURCES.items():
        path = work / "manifests" / f"{name}.jsonl"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _run(f"manifest-{name}", build_manifest.main,
                 ["--source", kind, "--root", str(shared / folder), "--out", str(path)])
        paths.append(path)
    return paths


def evaluate(out: Path, source: list[str], manifest_paths: Sequence[Path]) -> Path:
    from training import evaluate as evaluation  # noqa: PLC0415

    report = out / "report.json"
    if not report.exists():
        argv = [*source, "--manifest", *map(str, manifest_paths), "--split", "val", "--out", str(out)]
        _run(f"evaluate-{out.name}", evaluation.main, argv)
    return report


def export(store: Path, name: str, version: str, *, checkpoint: Path, seg: Path, report: Path) -> Path:
    from training import export as exporter  # noqa: PLC0415

    bundle = store / name / version
    if not bundle.exists():
        _run("export", exporter.main, [
            "--checkpoint", str(checkpoint), "--seg-checkpoint", str(seg), "--name", name,
            "--version", version, "--out", str(store), "--text-encoder-dir", str(TEXT_ENCODER),
            "--eval-report", str(report), "--fp16",
        ])
    return bundle


def finalise_card(bundle: Path, bundle_report: Path, command: str) -> None:
    """Attach the bundle's own evaluation to its metadata and card, then re-hash every file."""
    metadata = read_metadata(bundle)
    report = json.loads(bundle_report.read_text(encoding="utf-8"))
    metadata["metrics"] = {**report, "source": f"medslip-eval --bundle on the val splits ({command})"}
    (bundle / "MODEL_CARD.md").write_text(render_default_card(metadata, report, command), encoding="utf-8")
    write_metadata(bundle, metadata)
    verify_bundle(bundle)


def main(argv: list[str] | None = None) -> int:
    """Build (or resume building) the default bundle; prints the bundle folder."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work-dir", type=Path, default=Path("runs/default_model"),
                        help="checkpoints, manifests and evaluation reports (resumable)")
    parser.add_argument("--store", type=Path, default=REPO / "model_store")
    parser.add_argument("--name", default="medslip-cxr")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--replace", action="store_true",
                        help="remove an existing bundle of this name (keep one version in the tree)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work: Path = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    if args.replace and (args.store / args.name).exists():
        shutil.rmtree(args.store / args.name)

    checkpoint = pretrain(work)
    seg = finetune_segmentation(work, checkpoint)
    manifest_paths = manifests(work)
    report = evaluate(work / "eval_checkpoint",
                      ["--checkpoint", str(checkpoint), "--seg-checkpoint", str(seg)], manifest_paths)
    bundle = export(args.store, args.name, args.version, checkpoint=checkpoint, seg=seg, report=report)
    bundle_report = evaluate(work / "eval_bundle", ["--bundle", str(bundle)], manifest_paths)
    finalise_card(bundle, bundle_report, "medslip-build-default")
    sys.stdout.write(f"{bundle}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
