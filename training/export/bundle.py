"""`medslip-export --checkpoint CKPT [--seg-checkpoint CKPT] --name N --version V --out model_store`.

Writes `model_store/<name>/<version>/`: the contract's graphs (`app/contract/graphs.py`: the full
`image_model.onnx` and the classification-only `classify_model.onnx`, each a single file, checked and
compared with PyTorch before it is accepted), the two query books, MODEL_CARD.md and `metadata.json`
with the sha256 of every file, so the service can serve it without importing torch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from app.contract.bundle_files import sha256_file
from app.contract.bundle_metadata import (
    TEXT_GRAPH_FILE,
    TOKENIZER_FILE,
    BundleMetadata,
    TextEncoderMetadata,
    TextEncoderRef,
)
from app.contract.graphs import (
    CLASSIFY_GRAPH,
    FULL_GRAPH,
    GRAPH_FILES,
    GRAPH_SIGNATURES,
    GROUND_GRAPH,
    SCHEMA_VERSION,
)
from app.contract.imaging.preprocessing import PreprocessingSpec
from app.contract.vocabulary import ANATOMY, CXR14_TO_PATHOLOGY, PATHOLOGY
from training.config_io import config_to_dict
from training.export.graph import (
    ImageModelGraph,
    export_graph,
    graph_of,
    has_ground_graph,
    measure_parity,
    require_fp32_parity,
)
from training.export.model_card import render_model_card
from training.export.onnx_tools import cpu_session, run_session
from training.export.text_encoder import load_tokenizer, min_cosine, tokenize
from training.export.weight_precision import convert_to_fp16
from training.model import SEGMENTATION_STRUCTURES, MeDSLIP, SegmentationModel, load_checkpoint
from training.model.entities import anatomy_query_texts
from training.model.grounding import (
    GROUNDING_METHODS,
    PRIOR_STRUCTURES,
    GroundingMethod,
    default_grounding,
    uses_prior,
)
from training.model.text_encoder import load_descriptions, pathology_query_texts

logger = logging.getLogger(__name__)

GRAPH_FILE = GRAPH_FILES[FULL_GRAPH]
PATHOLOGY_BOOK_FILE = "pathology_queries.npy"
ANATOMY_BOOK_FILE = "anatomy_queries.npy"
CARD_FILE = "MODEL_CARD.md"
#: Findings the service reports by default when no evaluation names more (CXR14 classes + pneumonia).
DEFAULT_FINDINGS: tuple[str, ...] = tuple(dict.fromkeys([*CXR14_TO_PATHOLOGY.values(), "pneumonia"]))


def load_models(checkpoint: Path, seg_checkpoint: Path | None) -> tuple[MeDSLIP, SegmentationModel | None]:
    """The MeDSLIP model and, optionally, the segmentation model of a `medslip-finetune-seg` checkpoint."""
    model, segmentation, _ = _load_models_and_extras(checkpoint, seg_checkpoint)
    return model, segmentation


def training_summary(extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe training facts a checkpoint carries (data section of its config, step, epoch)."""
    summary: dict[str, Any] = {
        key: extra[key] for key in ("step", "epoch") if isinstance(extra.get(key), int)
    }
    train_config = extra.get("train_config")
    if isinstance(train_config, dict):
        for section in ("data", "schedule", "optim"):  # what the data was and how long, how fast
            if isinstance(train_config.get(section), dict):
                summary[section] = json.loads(json.dumps(train_config[section], default=str))
    return summary


def _load_models_and_extras(
    checkpoint: Path, seg_checkpoint: Path | None
) -> tuple[MeDSLIP, SegmentationModel | None, dict[str, Any]]:
    """When the segmentation trunk equals the MeDSLIP trunk (frozen-trunk fine-tuning) the same module is
    used for both: the exported graph then holds and computes that trunk once (see the export tests)."""
    model, model_extra = load_checkpoint(checkpoint)
    if seg_checkpoint is None:
        return model, None, model_extra
    seg_base, extra = load_checkpoint(seg_checkpoint)
    if "segmentation_head" not in extra or "segmentation" not in extra:
        raise ValueError(f"{seg_checkpoint.name} is not a segmentation checkpoint (no segmentation_head)")
    settings = extra["segmentation"]
    trained_at = int(settings.get("image_size", model.config.image_size))
    if trained_at != model.config.image_size:
        raise ValueError(
            f"{seg_checkpoint.name}: head trained at {trained_at} px, the model at "
            f"{model.config.image_size} px; a bundle has one input size"
        )
    main_trunk, seg_trunk = model.res_features.state_dict(), seg_base.res_features.state_dict()
    shared = main_trunk.keys() == seg_trunk.keys() and all(
        torch.equal(main_trunk[key], seg_trunk[key]) for key in main_trunk
    )
    trunk = model.res_features if shared else seg_base.res_features
    logger.info("segmentation trunk %s the MeDSLIP trunk", "is shared with" if shared else "differs from")
    if list(settings["structures"]) != list(SEGMENTATION_STRUCTURES):
        raise ValueError(f"segmentation structures {settings['structures']} differ from the contract's order")
    segmentation = SegmentationModel(
        trunk,
        num_structures=len(settings["structures"]),
        decoder_channels=tuple(settings["decoder_channels"]),
    )
    segmentation.head.load_state_dict(extra["segmentation_head"])
    if "prior_head" in extra:  # the finding maps' body prior comes from its own frozen head
        segmentation.attach_prior_head(extra["prior_head"], settings["prior_decoder_channels"])
    return model, segmentation.eval(), model_extra


def prior_source(segmentation: SegmentationModel | None, grounding: GroundingMethod) -> str | None:
    """Which head gives the finding maps' body prior: "own" (a frozen head of its own, kept from the
    stage the maps were measured with), "masks" (the head whose masks are served) or None (no prior)."""
    if segmentation is None or not uses_prior(grounding):
        return None
    return "own" if segmentation.prior_head is not None else "masks"


def text_encoder_entry(
    text_encoder_dir: Path | None, bundle_dir: Path, model: MeDSLIP
) -> TextEncoderRef | None:
    """The metadata `text_encoder` block; refuses an encoder whose width or pooling differs from the one
    the model's books were built with (free-text queries would then be meaningless)."""
    if text_encoder_dir is None:
        logger.warning("no --text-encoder-dir: the bundle cannot embed free-text queries")
        return None
    encoder = TextEncoderMetadata.read(text_encoder_dir)
    config = model.config
    if encoder.dim != config.text_dim or encoder.pooling != config.text_pooling:
        raise ValueError(
            f"text encoder (dim {encoder.dim}, {encoder.pooling}) does not match the model "
            f"(dim {config.text_dim}, {config.text_pooling})"
        )
    return TextEncoderRef(
        name=encoder.name,
        dir=Path(os.path.relpath(text_encoder_dir.resolve(), bundle_dir.resolve())).as_posix(),
        version=encoder.version,
        dim=encoder.dim,
        max_length=encoder.max_length,
        pooling=encoder.pooling,
        normalize=encoder.normalize,
        sha256=encoder.files[TEXT_GRAPH_FILE],
    )


def book_agreement(text_encoder_dir: Path, texts: list[str], book: NDArray[np.float32]) -> float:
    """Min cosine between the built-in book and the bundle's text encoder run on the book's texts.

    Near 1.0 means a free-text query typed in the service lands where the built-in queries do; a low
    value means the books were built from other texts or another encoder (recorded, not fatal).
    """
    encoder = TextEncoderMetadata.read(text_encoder_dir)
    tokenizer = load_tokenizer(text_encoder_dir / TOKENIZER_FILE, encoder.max_length)
    session = cpu_session(text_encoder_dir / TEXT_GRAPH_FILE)
    embeddings = run_session(session, tokenize(tokenizer, texts))["embeddings"]  # (Q, T)
    return min_cosine(embeddings, book)


def operating_points(report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per-finding thresholds of the pooled evaluation: the balanced (Youden's J) point when the report
    has one, else max-F1 (older reports). Max-F1 follows prevalence: on pneumonia-heavy splits it picks
    thresholds that flag almost every film, so it is only the fallback. A finding no better than chance
    (AUROC <= 0.5, or no threshold with sensitivity + specificity > 1) gets none: a threshold on a
    score that does not separate would only look validated."""
    if report is None:
        return {}
    pooled = report.get("classification", {}).get("all", {})
    split = report.get("split", "?")
    points: dict[str, dict[str, Any]] = {}
    for name, m in pooled.items():
        counts = f"on {split} ({m.get('n_pos')} pos / {m.get('n_neg')} neg)"
        if m.get("balanced_threshold") is not None:
            youden = m["balanced_sensitivity"] + m["balanced_specificity"] - 1.0
            if youden <= 0.0 or (m.get("auroc") is not None and m["auroc"] <= 0.5):
                logger.warning("no operating point for %s: it does no better than chance on %s", name, split)
                continue
            threshold, source = m["balanced_threshold"], (
                f"Youden's J {counts}: sensitivity {m['balanced_sensitivity']:.3f}, "
                f"specificity {m['balanced_specificity']:.3f}")
        elif m.get("threshold") is not None:
            threshold, source = m["threshold"], f"max-F1 {counts}"
        else:
            continue
        points[name] = {
            "threshold": threshold,
            "source": source,
            "auroc": m.get("auroc"),
            "target_sensitivity": m.get("target_sensitivity"),
            "threshold_at_target_sensitivity": m.get("threshold_at_target_sensitivity"),
        }
    return points


def graph_io(model: MeDSLIP, num_structures: int, name: str = FULL_GRAPH
             ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Symbolic I/O shapes of graph `name`, as metadata lists them."""
    config = model.config
    size, grid, dim = config.image_size, config.grid_size, config.text_dim
    shapes: dict[str, list[Any]] = {
        "image": ["B", 3, size, size], "pathology_queries": ["Qp", dim], "anatomy_queries": ["Qa", dim],
        "pathology_probs": ["B", "Qp"], "pathology_maps": ["B", "Qp", grid, grid],
        "anatomy_probs": ["B", "Qa"], "anatomy_maps": ["B", "Qa", grid, grid],
        "segmentation_logits": ["B", num_structures, size, size],
    }
    inputs, outputs = GRAPH_SIGNATURES[name]
    return {n: shapes[n] for n in inputs}, {n: shapes[n] for n in outputs}


def graph_entry(name: str, model: MeDSLIP, num_structures: int, precision: str,
                parity: dict[str, float]) -> dict[str, Any]:
    """One `graphs` entry of metadata.json."""
    inputs, outputs = graph_io(model, num_structures, name)
    return {"file": GRAPH_FILES[name], "inputs": inputs, "outputs": outputs, "precision": precision,
            "io_dtype": "float32", "parity_max_abs_diff": parity}


def build_metadata(
    *, name: str, version: str, model: MeDSLIP, segmentation: SegmentationModel | None, precision: str,
    parity: dict[str, dict[str, float]], text_encoder: TextEncoderRef | None, report: dict[str, Any] | None,
    training_data: dict[str, Any],
) -> BundleMetadata:
    """Every metadata.json key of docs/contracts.md except `files` (added by `BundleMetadata.write`).

    `parity`: graph name -> max |ORT - torch| per output of that graph."""
    structures = [] if segmentation is None else list(SEGMENTATION_STRUCTURES)
    points = operating_points(report)
    findings = [n for n in PATHOLOGY if n in points or n in DEFAULT_FINDINGS]
    metrics: dict[str, Any] = {}
    if report is not None:
        sections = ("classification", "grounding", "segmentation")
        metrics = {key: report[key] for key in sections if key in report}
        evaluated = report.get("evaluated", {}).get("kind", "?")
        metrics["source"] = f"medslip-eval of the {evaluated} on the {report.get('split')} split, " \
                            f"{report.get('n_images')} images"
    return BundleMetadata.parse({
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "description": "MeDSLIP dual-stream chest X-ray model: zero-shot finding probabilities and "
                       "attention heat maps for any text query, anatomy grounding, anatomy segmentation.",
        "intended_use": "research only; not a medical device",
        "architecture": config_to_dict(model.config),
        "preprocessing": PreprocessingSpec.trained(model.config.image_size).to_dict(),
        "graphs": {graph: graph_entry(graph, model, len(structures), precision, diffs)
                   for graph, diffs in parity.items()},
        "text_encoder": text_encoder,
        "pathology": {"names": list(PATHOLOGY), "query_texts": pathology_query_texts(load_descriptions()),
                      "embeddings_file": PATHOLOGY_BOOK_FILE},
        "anatomy": {"names": list(ANATOMY), "query_texts": anatomy_query_texts(),
                    "embeddings_file": ANATOMY_BOOK_FILE},
        "operating_points": points,
        "default_threshold": 0.5,
        "findings_reported": findings,
        "segmentation": {"structures": structures, "threshold": 0.5},
        "training_data": training_data,
        "metrics": metrics,
    })


def export_bundle(
    *, checkpoint: Path, seg_checkpoint: Path | None, name: str, version: str, store: Path,
    text_encoder_dir: Path | None = None, fp16: bool = False, eval_report: Path | None = None,
    grounding: GroundingMethod | None = None,
) -> Path:
    """Export, verify and write `<store>/<name>/<version>/`; returns the bundle folder.

    The bundle is assembled in a scratch folder beside it and moved into place only once complete, so a
    failed export never leaves a half-written version the service could pick up.
    """
    model, segmentation, extra = _load_models_and_extras(checkpoint, seg_checkpoint)
    grounding = grounding or default_grounding(segmentation is not None)
    graph = ImageModelGraph(model, segmentation, grounding)
    report = json.loads(eval_report.read_text(encoding="utf-8")) if eval_report else None
    bundle_dir = store / name / version
    if bundle_dir.exists():
        raise FileExistsError(f"{bundle_dir} exists; versions are immutable, choose a new --version")
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    text_encoder = text_encoder_entry(text_encoder_dir, bundle_dir, model)

    with tempfile.TemporaryDirectory(dir=bundle_dir.parent, prefix=f".{version}-") as scratch:
        work = Path(scratch)
        staged = work / "bundle"
        staged.mkdir()
        precision = "fp16" if fp16 else "fp32"
        parity: dict[str, dict[str, float]] = {}
        for graph_name in (FULL_GRAPH, CLASSIFY_GRAPH, *([GROUND_GRAPH] if has_ground_graph(graph) else [])):
            module = graph_of(graph_name, graph)
            fp32_path = export_graph(graph_name, module, model, work / f"{graph_name}.onnx")
            diffs = measure_parity(graph, fp32_path, name=graph_name)
            require_fp32_parity(diffs)
            final_path = fp32_path
            if fp16:
                final_path = convert_to_fp16(fp32_path, work / f"{graph_name}.fp16.onnx")
                diffs = measure_parity(graph, final_path, name=graph_name)  # shipped graph: recorded only
                drift = {k: f"{v:.2e}" for k, v in diffs.items()}
                logger.info("%s fp16 drift vs torch fp32: %s", graph_name, drift)
            parity[graph_name] = diffs
            shutil.move(final_path, staged / GRAPH_FILES[graph_name])
        np.save(staged / PATHOLOGY_BOOK_FILE, model.pathology_book.detach().numpy().astype(np.float32))
        np.save(staged / ANATOMY_BOOK_FILE, model.anatomy_book.detach().numpy().astype(np.float32))
        training_data = {"checkpoint": checkpoint.name, "checkpoint_sha256": sha256_file(checkpoint),
                         **training_summary(extra)}
        if seg_checkpoint is not None:
            training_data["seg_checkpoint"] = seg_checkpoint.name
            training_data["seg_checkpoint_sha256"] = sha256_file(seg_checkpoint)
        metadata = build_metadata(
            name=name, version=version, model=model, segmentation=segmentation, precision=precision,
            parity=parity, text_encoder=text_encoder, report=report, training_data=training_data,
        )
        metadata.graphs[FULL_GRAPH]["finding_maps"] = {
            "method": grounding,
            "prior_structures": list(PRIOR_STRUCTURES) if uses_prior(grounding) else [],
            "prior_head": prior_source(segmentation, grounding),
            "doc": "training/model/grounding.py",
        }
        if metadata.text_encoder is not None and text_encoder_dir is not None:
            books = {"pathology": (metadata.pathology.query_texts, model.pathology_book.detach()),
                     "anatomy": (metadata.anatomy.query_texts, model.anatomy_book.detach())}
            agreement = {
                stream: book_agreement(text_encoder_dir, texts, book.numpy())
                for stream, (texts, book) in books.items()
            }
            metadata.text_encoder.book_min_cosine = agreement
            if min(agreement.values()) < 0.99:
                logger.warning("query books disagree with the text encoder (min cosine %s)", agreement)
        (staged / CARD_FILE).write_text(render_model_card(metadata.document()), encoding="utf-8")
        metadata.write(staged)
        BundleMetadata.verify(staged)
        staged.rename(bundle_dir)
    logger.info("bundle %s/%s written to %s", name, version, bundle_dir)
    return bundle_dir


def main(argv: list[str] | None = None) -> int:
    """Export a bundle; prints its folder and the sha256 of image_model.onnx on stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path, help="MeDSLIP checkpoint (.pt)")
    parser.add_argument("--seg-checkpoint", type=Path, default=None, help="medslip-finetune-seg checkpoint")
    parser.add_argument("--name", default="medslip-cxr")
    parser.add_argument("--version", required=True)
    parser.add_argument("--out", type=Path, default=Path("model_store"), help="model store root")
    parser.add_argument("--text-encoder-dir", type=Path, default=None,
                        help="text-encoder bundle, e.g. model_store/text-encoders/all-minilm-l6-v2/1")
    parser.add_argument("--fp16", action="store_true", help="fp16 weights, float32 graph I/O")
    parser.add_argument("--eval-report", type=Path, default=None, help="report.json of medslip-eval")
    parser.add_argument("--grounding", choices=GROUNDING_METHODS, default=None,
                        help="finding heat-map method (default: layer_mean_prior with segmentation)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bundle_dir = export_bundle(
        checkpoint=args.checkpoint, seg_checkpoint=args.seg_checkpoint, name=args.name, version=args.version,
        store=args.out, text_encoder_dir=args.text_encoder_dir, fp16=args.fp16, eval_report=args.eval_report,
        grounding=args.grounding,
    )
    sys.stdout.write(f"{bundle_dir} {sha256_file(bundle_dir / GRAPH_FILE)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
