"""`medslip-bench`: the benchmark command, dispatching to the service benchmark or the comparison.

Why here and not in `app/`: two of its runs need torch (`compare`, and the PyTorch eager reference of
`--checkpoint`), and the service package never imports `training` or torch. This module imports
neither at load time, so the command still runs the service benchmark (`app.bench`) and `decode` on a
host without the training extras.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from app.bench import main as service_bench_main


def _eager_reference(
    checkpoint: Path, model_dir: Path, images: list[tuple[bytes, str]], calls: int
) -> dict[str, Any]:
    """PyTorch eager timing of the same weights (`training.bench.eager`, imported only when asked)."""
    try:
        from training.bench.eager import bench_torch_eager  # noqa: PLC0415  (needs torch)
    except ImportError as exc:
        raise SystemExit(f"medslip-bench --checkpoint needs the training extras (torch): {exc}") from exc
    return bench_torch_eager(checkpoint, model_dir, images, calls)


def main(argv: list[str] | None = None) -> int:
    given = list(argv if argv is not None else sys.argv[1:])
    if given[:1] == ["compare"]:
        try:
            from training.bench.compare import main as compare_main  # noqa: PLC0415  (needs torch)
        except ImportError as exc:
            raise SystemExit(f"medslip-bench compare needs the training extras (torch): {exc}") from exc
        return compare_main(given[1:])
    return service_bench_main(given, eager_reference=_eager_reference)


if __name__ == "__main__":
    raise SystemExit(main())
