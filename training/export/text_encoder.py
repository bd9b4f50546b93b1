"""`python -m training.export.text_encoder --encoder DIR --out model_store/text-encoders/<name>/<version>`.

Exports the sentence encoder that builds the query books, so the service can embed free-text queries
with exactly the training-time function: token ids -> encoder -> pooling -> (optional) L2 norm.
The ONNX graph is compared with the torch encoder before anything is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from tokenizers import Tokenizer

from app.contract.bundle_files import sha256_file
from app.contract.bundle_metadata import (
    TEXT_GRAPH_FILE,
    TEXT_SCHEMA_VERSION,
    TOKENIZER_FILE,
    TextEncoderMetadata,
)
from app.contract.vocabulary import PATHOLOGY
from training.export.onnx_tools import cpu_session, export_to_onnx, max_abs_diff, run_session
from training.export.weight_precision import convert_to_fp16, quantize_dynamic_int8
from training.model.entities import anatomy_query_texts
from training.model.text_encoder import (
    TextEncoder,
    load_descriptions,
    pathology_query_texts,
    resolve_text_encoder_dir,
)

logger = logging.getLogger(__name__)

#: fp32 graph vs torch: the contract's tolerance.
FP32_TOLERANCE = 1e-4
#: Reduced-precision graphs must keep every probe embedding this close (cosine) to the fp32 torch one.
MIN_COSINE = 0.99


def load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    """The fast tokenizer with the truncation and padding the service applies."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_length)
    pad_id = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token="[PAD]")
    return tokenizer


def tokenize(tokenizer: Tokenizer, texts: list[str]) -> dict[str, NDArray[np.int64]]:
    """int64 (B, L) `input_ids` and `attention_mask`, as the graph takes them."""
    encodings = tokenizer.encode_batch(texts)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }


def probe_texts() -> list[str]:
    """Texts the parity is measured on: the query texts the books are built from, the bare entity words
    and two report-style sentences (free-text queries the service will see)."""
    texts = [*anatomy_query_texts(), *PATHOLOGY, "There is a large right pleural effusion.",
             "No acute cardiopulmonary process."]
    try:
        texts.extend(pathology_query_texts(load_descriptions()))
    except (FileNotFoundError, ValueError) as exc:  # descriptions are optional for the measurement
        logger.warning("pathology descriptions unavailable (%s); probing with entity words only", exc)
    return texts


def torch_embeddings(encoder: TextEncoder, feeds: dict[str, NDArray[np.int64]]) -> NDArray[np.float32]:
    """The reference: `TextEncoder.forward`, the function that built the books."""
    with torch.no_grad():
        out = encoder(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]))
    return out.numpy().astype(np.float32)


def check_tokenizer_matches(encoder: TextEncoder, tokenizer: Tokenizer, texts: list[str]) -> None:
    """The service tokenises with `tokenizers` from tokenizer.json; training used the HF tokenizer of the
    encoder. Refuse to export when the two disagree on any probe text (the books would not match)."""
    for text in texts:
        service_ids = tokenizer.encode(text).ids
        encoded = encoder.tokenizer(text, truncation=True, max_length=encoder.max_length)
        training_ids = list(encoded["input_ids"])
        if service_ids != training_ids:
            raise RuntimeError("tokenizer.json and the encoder's tokenizer disagree on a probe text")


def min_cosine(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Smallest row-wise cosine similarity between two (N, T) embedding sets."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1) + 1e-12)
    return float(cos.min())


def export_text_encoder(
    encoder: TextEncoder,
    tokenizer_file: Path,
    out_dir: Path,
    *,
    name: str,
    version: str,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Export, verify and write a text-encoder bundle; returns its metadata. Raises RuntimeError when
    the graph drifts beyond FP32_TOLERANCE (fp32) or MIN_COSINE (fp16/int8)."""
    encoder.eval()
    tokenizer = load_tokenizer(tokenizer_file, encoder.max_length)
    texts = probe_texts()
    check_tokenizer_matches(encoder, tokenizer, texts)
    feeds = tokenize(tokenizer, texts)
    reference = torch_embeddings(encoder, feeds)  # (N, T)

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as scratch:
        fp32_path = Path(scratch) / "fp32.onnx"
        example = tokenize(tokenizer, ["normal", "It is located at left_lung_unspec. "])
        batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
        export_to_onnx(
            encoder,
            (torch.from_numpy(example["input_ids"]), torch.from_numpy(example["attention_mask"])),
            fp32_path,
            input_names=("input_ids", "attention_mask"),
            output_names=("embeddings",),
            dynamic_shapes={"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}},
        )
        fp32_out = run_session(cpu_session(fp32_path), feeds)["embeddings"]
        fp32_diff = max_abs_diff(fp32_out, reference)
        logger.info("text encoder fp32 parity: max abs diff %.2e over %d texts", fp32_diff, len(reference))
        if fp32_diff > FP32_TOLERANCE:
            raise RuntimeError(f"fp32 ONNX text encoder differs from torch by {fp32_diff:.2e}")
        final_path = fp32_path
        if precision == "fp16":
            final_path = convert_to_fp16(fp32_path, Path(scratch) / "fp16.onnx")
        elif precision == "int8":
            final_path = quantize_dynamic_int8(fp32_path, Path(scratch) / "int8.onnx")
        elif precision != "fp32":
            raise ValueError(f"precision must be fp32, fp16 or int8, got {precision!r}")
        final_out = run_session(cpu_session(final_path), feeds)["embeddings"]
        cosine = min_cosine(final_out, reference)
        drift = max_abs_diff(final_out, reference)
        logger.info("text encoder %s: min cosine %.5f, max abs diff %.2e", precision, cosine, drift)
        if cosine < MIN_COSINE:
            raise RuntimeError(f"{precision} text encoder min cosine {cosine:.4f} < {MIN_COSINE}")
        for stale in out_dir.iterdir():  # a re-export replaces the whole bundle
            if stale.is_file():
                stale.unlink()
        shutil.copyfile(final_path, out_dir / TEXT_GRAPH_FILE)
    shutil.copyfile(tokenizer_file, out_dir / TOKENIZER_FILE)

    config = encoder.model.config
    metadata: dict[str, Any] = {
        "schema_version": TEXT_SCHEMA_VERSION,
        "name": name,
        "version": version,
        "dim": int(reference.shape[1]),
        "max_length": encoder.max_length,
        "pooling": encoder.pooling,
        "normalize": encoder.normalize,
        "precision": precision,
        "inputs": {"input_ids": ["B", "L"], "attention_mask": ["B", "L"]},
        "outputs": {"embeddings": ["B", int(reference.shape[1])]},
        "source": {"model_type": str(getattr(config, "model_type", "")),
                   "num_hidden_layers": int(getattr(config, "num_hidden_layers", 0))},
        "parity": {"n_texts": len(reference), "fp32_max_abs_diff": fp32_diff,
                   f"{precision}_max_abs_diff": drift, f"{precision}_min_cosine": cosine},
        "sha256": sha256_file(out_dir / TEXT_GRAPH_FILE),
    }
    return TextEncoderMetadata.parse(metadata).write(out_dir).document()


def main(argv: list[str] | None = None) -> int:
    """Export a text encoder bundle; prints the written metadata's parity figures on stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encoder", required=True, help="local HF model folder, or 'all-minilm-l6-v2'")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder to (re)write")
    parser.add_argument("--name", default=None, help="bundle name (default: the out folder's parent name)")
    parser.add_argument("--version", default=None, help="bundle version (default: the out folder name)")
    parser.add_argument("--pooling", choices=("mean", "cls"), default="mean")
    parser.add_argument("--no-normalize", action="store_true", help="skip the L2 normalisation")
    parser.add_argument("--max-length", type=int, default=64)
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="float16 weights, float32 I/O")
    precision.add_argument("--int8", action="store_true", help="dynamic int8 MatMul weights")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    encoder_dir = resolve_text_encoder_dir(args.encoder)
    encoder = TextEncoder.from_pretrained(
        encoder_dir, pooling=args.pooling, normalize=not args.no_normalize, max_length=args.max_length
    )
    metadata = export_text_encoder(
        encoder,
        encoder_dir / TOKENIZER_FILE,
        args.out,
        name=args.name or args.out.resolve().parent.name,
        version=args.version or args.out.resolve().name,
        precision="fp16" if args.fp16 else "int8" if args.int8 else "fp32",
    )
    sys.stdout.write(json.dumps(metadata["parity"]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
