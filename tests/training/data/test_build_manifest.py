"""The build_manifest CLI writes a readable manifest with the reader's records."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data.build_manifest import main
from training.data.manifest import read_manifest
from training.data.sources import read_jsrt_scr


@pytest.mark.shared_data
def test_cli_writes_jsrt_manifest(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "jsrt.jsonl"
    assert main(["--source", "jsrt", "--root", str(shared_data / "jsrt-scr"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == "train=113 val=32"
    assert read_manifest(out) == read_jsrt_scr(shared_data / "jsrt-scr")
