"""Convert the released MeDSLIP checkpoint into this package's checkpoint format.

The release saves `{'model': state_dict, ...}` without the query books (it re-encoded them with
Bio_ClinicalBERT at every start). Import therefore (1) checks every key and shape against our model,
(2) re-computes the books with the given local text encoder and descriptions, and (3) saves
`{"model", "model_config", "source"}` that `load_checkpoint` rebuilds with no further inputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from training.model.checkpoint import save_checkpoint
from training.model.config import ModelConfig
from training.model.medslip import MeDSLIP
from training.model.text_encoder import TextEncoder, build_query_books, load_descriptions

logger = logging.getLogger(__name__)

#: Buffers of our model that the released checkpoint does not have (they are recomputed on import).
BOOK_KEYS = ("pathology_book", "anatomy_book")

_MAX_LISTED = 20


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes do not match the model they are meant for."""


def _listing(title: str, names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    more = f" (+{len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return f"{len(names)} {title}: {shown}{more}"


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: MeDSLIP, ignore: tuple[str, ...] = BOOK_KEYS
) -> None:
    """Raise `CheckpointMismatchError` listing missing, unexpected and shape-mismatched keys."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items() if name not in ignore}
    found = {name: tuple(t.shape) for name, t in state_dict.items() if name not in ignore}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = sorted(
        f"{name} {found[name]} != {expected[name]}"
        for name in set(expected) & set(found)
        if found[name] != expected[name]
    )
    problems = [
        _listing(title, names)
        for title, names in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches (checkpoint != model)", mismatched),
        )
        if names
    ]
    if problems:
        raise CheckpointMismatchError("checkpoint does not match the model: " + "; ".join(problems))


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Drop a DistributedDataParallel `module.` prefix when every key has it."""
    if state_dict and all(name.startswith(prefix) for name in state_dict):
        return {name[len(prefix) :]: tensor for name, tensor in state_dict.items()}
    return dict(state_dict)


def infer_config(state_dict: Mapping[str, torch.Tensor], **overrides: Any) -> ModelConfig:
    """Architecture read off the tensors: trunk, text width T, decoder depth (heads cannot be inferred)."""
    if "res_features.4.0.conv3.weight" in state_dict:  # bottleneck blocks
        trunk = "resnet50"
    else:  # basic blocks: ResNet-34 has a third layer1 block, ResNet-18 two
        trunk = "resnet34" if "res_features.4.2.conv1.weight" in state_dict else "resnet18"
    text_dim = int(state_dict["pathology_embedding_layer.weight"].shape[1])
    d_model = int(state_dict["pathology_embedding_layer.weight"].shape[0])
    layer_ids = {
        int(name.split(".")[2]) for name in state_dict if name.startswith("decoder_pathology.layers.")
    }
    ffn_dim = int(state_dict["decoder_pathology.layers.0.linear1.weight"].shape[0])
    settings: dict[str, Any] = {
        "trunk": trunk,
        "text_dim": text_dim,
        "d_model": d_model,
        "n_layers": len(layer_ids),
        "ffn_dim": ffn_dim,
    }
    settings.update(overrides)
    return ModelConfig(**settings)


def import_official(
    checkpoint_path: str | Path,
    encoder: TextEncoder,
    descriptions: Mapping[str, str],
    **config_overrides: Any,
) -> MeDSLIP:
    """Load a released checkpoint into a `MeDSLIP` whose books come from `encoder`.

    `config_overrides` set what the tensors cannot tell (n_heads, and the text_* fields recording
    which encoder built the books).
    """
    payload = torch.load(Path(checkpoint_path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise CheckpointMismatchError("expected a dict with a 'model' state_dict (the released layout)")
    state_dict = strip_prefix(payload["model"])
    config = infer_config(state_dict, **config_overrides)
    if encoder.dim != config.text_dim:
        raise CheckpointMismatchError(
            f"text encoder width {encoder.dim} != checkpoint query width {config.text_dim}"
        )
    model = MeDSLIP(config)
    check_state_dict(state_dict, model)
    pathology_book, anatomy_book = build_query_books(encoder, descriptions)
    full_state = {**state_dict, "pathology_book": pathology_book, "anatomy_book": anatomy_book}
    model.load_state_dict(full_state, strict=True)
    model.eval()
    return model


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="medslip-import-official",
        description="Convert the released MeDSLIP checkpoint ({'model': state_dict}) to this package's "
        "checkpoint format.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="released .pth file")
    parser.add_argument("--text-encoder", required=True, help="local HF BERT directory (or all-minilm-l6-v2)")
    parser.add_argument(
        "--descriptions", type=Path, required=True, help="JSON: pathology name -> description"
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    parser.add_argument(
        "--pooling", choices=("cls", "mean"), default="cls", help="sentence pooling (release: cls)"
    )
    parser.add_argument("--normalize", action="store_true", help="L2-normalise embeddings (release: off)")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per query text")
    parser.add_argument("--n-heads", type=int, default=4, help="attention heads (release: 4)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; writes the converted checkpoint and prints its path."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    encoder = TextEncoder.from_pretrained(
        args.text_encoder, pooling=args.pooling, normalize=args.normalize, max_length=args.max_length
    )
    try:
        model = import_official(
            args.checkpoint,
            encoder,
            load_descriptions(args.descriptions),
            n_heads=args.n_heads,
            text_encoder=str(args.text_encoder),
            text_pooling=args.pooling,
            text_normalize=args.normalize,
            max_text_length=args.max_length,
        )
    except CheckpointMismatchError as error:
        logger.error("%s", error)
        return 1
    save_checkpoint(
        args.out,
        model,
        source={
            "kind": "official-release",
            "checkpoint": args.checkpoint.name,
            "descriptions": args.descriptions.name,
        },
    )
    logger.info("imported %s: %s", args.checkpoint.name, dataclasses.asdict(model.config))
    sys.stdout.write(f"{args.out}\n")
    return 0
