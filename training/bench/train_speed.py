"""`python -m training.bench.train_speed`: CPU training throughput of MeDSLIP (docs/bench/training.md).

Measures optimizer steps of the real objective (medslip_losses, AdamW, clipping) on synthetic batches, so
the figure is model compute only (image decoding/augmentation run in DataLoader workers and are
reported separately as `decode+augment img/s` on real files when the shared data is present). Each
setting runs in its own subprocess so the peak RSS (ru_maxrss) belongs to that setting alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from training.host import cpu_model
from training.model import create_model
from training.tasks.losses import LossConfig, medslip_losses
from training.trainer.config import OptimSection
from training.trainer.optim import build_optimizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchResult:
    model: str
    image_size: int
    batch_size: int
    precision: str  # "fp32" or "bf16+channels_last"
    threads: int
    steps: int
    images_per_s: float
    step_s: float
    peak_rss_mib: float
    load_average: float  # 1-minute load average when the setting started (the machine is shared)


def synthetic_batch(batch_size: int, image_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random images and sparse report labels shaped like PretrainDataset output."""
    rng = np.random.default_rng(seed)
    matrix = np.full((batch_size, 51, 75), -1, dtype=np.int64)
    for b in range(batch_size):
        rows, cols = rng.integers(0, 51, 30), rng.integers(0, 75, 30)
        matrix[b, rows, cols] = rng.integers(0, 2, 30)
    pathology = np.where((matrix == 1).any(1), 1, np.where((matrix == 0).any(1), 0, -1))  # (B, 75)
    anatomy = np.where((matrix == 1).any(2), 1, np.where((matrix == 0).any(2), 0, -1))  # (B, 51)
    return {
        "image": torch.from_numpy(
            rng.standard_normal((batch_size, 3, image_size, image_size), dtype=np.float32)
        ),
        "matrix": torch.from_numpy(matrix),
        "pathology_labels": torch.from_numpy(pathology),
        "anatomy_labels": torch.from_numpy(anatomy),
    }


def run_single(
    model_name: str,
    image_size: int,
    batch_size: int,
    precision: str,
    *,
    warmup: int,
    steps: int,
    threads: int,
) -> BenchResult:
    """Time `steps` optimizer steps after `warmup` untimed ones, in this process."""
    load_average = os.getloadavg()[0]
    torch.manual_seed(0)
    if threads > 0:
        torch.set_num_threads(threads)
    model = create_model(model_name, image_size=image_size)
    model.set_query_books(torch.randn(75, model.config.text_dim), torch.randn(51, model.config.text_dim))
    channels_last = precision != "fp32"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.train()
    optimizer = build_optimizer(model, OptimSection())
    batch = synthetic_batch(batch_size, image_size)
    if channels_last:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(0)
    timings: list[float] = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision != "fp32"):
            terms = medslip_losses(
                model(batch["image"]),
                batch,
                model.pathology_book,
                model.anatomy_book,
                config=LossConfig(),
                generator=generator,
            )
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if index >= warmup:
            timings.append(time.perf_counter() - start)
    step_s = float(np.median(timings))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return BenchResult(
        model_name,
        image_size,
        batch_size,
        precision,
        torch.get_num_threads(),
        steps,
        batch_size / step_s,
        step_s,
        peak_kib / 1024,
        load_average,
    )


def decode_rate(image_size: int, count: int = 32) -> float | None:
    """Real-file decode + train augmentation images/s on one core (None without the shared data)."""
    from app.contract.imaging import PreprocessingSpec  # noqa: PLC0415
    from app.contract.locations import shared_data_dir  # noqa: PLC0415
    from training.data.augment import transforms_from_spec  # noqa: PLC0415  (only when measured)
    from training.data.dataset import load_pixels  # noqa: PLC0415

    folder = shared_data_dir() / "kermany-pediatric" / "images" / "Normal"
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.jpg"))[:count]
    transform = transforms_from_spec(PreprocessingSpec.trained(image_size), train=True)
    start = time.perf_counter()
    for index, path in enumerate(files):
        transform.set_random_state(index)
        transform(load_pixels(str(path)))
    return len(files) / (time.perf_counter() - start)


def machine_description() -> str:
    """CPU model, logical cores, torch version."""
    python = platform.python_version()
    return f"{cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__}, Python {python}"


def write_markdown(results: list[BenchResult], decode: float | None, path: Path, command: str) -> None:
    lines = [
        "# Training throughput (CPU)",
        "",
        f"Machine: {machine_description()}.",
        f"Command: `{command}`.",
        "",
        "Optimizer steps of the full MeDSLIP objective (5 loss terms, AdamW, grad clipping) on synthetic",
        "batches: model compute only. Median step time over the timed steps after warm-up; peak RSS of a",
        "fresh process per row. The machine is shared by other jobs: `load avg` is the 1-minute load average",
        "when the row started; on 2 cores anything above ~2 means the figure is slowed by other work.",
        "",
        "| model | size | batch | precision | threads | timed steps | images/s | s/step | peak RSS MiB "
        "| load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.model} | {r.image_size} | {r.batch_size} | {r.precision} | {r.threads} | {r.steps} | "
        f"{r.images_per_s:.2f} | {r.step_s:.2f} | {r.peak_rss_mib:.0f} | {r.load_average:.1f} |"
        for r in results
    ]
    if decode is not None:
        lines += ["", f"Decode + train augmentation of real 512 px JPEGs (one core): {decode:.1f} images/s."]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run each setting in a subprocess, print the table rows as JSON lines, write the markdown."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["medslip_resnet18", "medslip_resnet50"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[224])
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "bf16+channels_last"],
        choices=["fp32", "bf16+channels_last"],
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--out", type=Path, default=Path("docs/bench/training.md"))
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.single:
        result = run_single(
            args.models[0],
            args.sizes[0],
            args.batch_size,
            args.precisions[0],
            warmup=args.warmup,
            steps=args.steps,
            threads=args.threads,
        )
        sys.stdout.write(json.dumps(asdict(result)) + "\n")
        return 0
    results: list[BenchResult] = []
    for model in args.models:
        for size in args.sizes:
            for precision in args.precisions:
                command = [
                    sys.executable,
                    "-m",
                    "training.bench.train_speed",
                    "--single",
                    "--models",
                    model,
                    "--sizes",
                    str(size),
                    "--precisions",
                    precision,
                    "--batch-size",
                    str(args.batch_size),
                    "--warmup",
                    str(args.warmup),
                    "--steps",
                    str(args.steps),
                    "--threads",
                    str(args.threads),
                ]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                result = BenchResult(**json.loads(output.strip().splitlines()[-1]))
                logger.info("%s", result)
                sys.stdout.write(json.dumps(asdict(result)) + "\n")
                results.append(result)
    decode = decode_rate(max(args.sizes))
    shown = "python -m training.bench.train_speed " + " ".join(argv if argv is not None else sys.argv[1:])
    write_markdown(results, decode, args.out, shown.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
