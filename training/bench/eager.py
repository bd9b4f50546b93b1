"""PyTorch eager reference for `medslip-bench`: the same weights as a bundle, timed in-process.

Kept in training/ because it needs torch; the service package never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from app.bench import time_calls
from app.bench_load import percentiles
from app.contract.bundle import load_bundle
from app.contract.imaging import decode_bytes, preprocess
from training.model.checkpoint import load_checkpoint


def bench_torch_eager(
    checkpoint: Path, model_dir: Path, images: list[tuple[bytes, str]], repeats: int
) -> dict[str, Any]:
    """PyTorch eager forward of the same weights at batch 1 (torch is imported only here)."""
    model, _ = load_checkpoint(checkpoint)
    size = load_bundle(model_dir).image_size
    tensors = [torch.from_numpy(preprocess(decode_bytes(d, m).pixels, size=size)[0][None]) for d, m in images]
    index = [0]

    def forward() -> None:
        with torch.inference_mode():
            model(tensors[index[0] % len(tensors)])
        index[0] += 1

    return {
        "torch_eager_ms": percentiles(time_calls(forward, repeats)),
        "torch_threads": torch.get_num_threads(),
    }
