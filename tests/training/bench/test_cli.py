"""`medslip-bench` dispatch: the torch runs live in training/, the command loads without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.bench import main as service_bench_main
from training.bench.cli import main as bench_main

REPO = Path(__file__).resolve().parents[3]


def test_command_loads_without_torch() -> None:
    code = "import sys, training.bench.cli; sys.exit('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_compare_subcommand_is_dispatched_and_needs_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench_main(["compare", "--rounds", "2"])  # no --model-dir / --checkpoint
    assert "compare" in capsys.readouterr().err  # the compare parser answered, not the service one


def test_checkpoint_without_the_reference_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="PyTorch reference"):
        service_bench_main(["--model-dir", str(tmp_path), "--checkpoint", str(tmp_path / "x.pt")])
