"""`medslip-bench decode` end to end on synthetic films and the tiny bundle: every film timed full and
reduced, the reduction the service would use reported, both pool kinds exercised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from app.bench import main as bench_main
from tests.support.images import dicom_bytes, make_dataset, phantom

imagecodecs = pytest.importorskip("imagecodecs", reason="imagecodecs (serve extras) encodes the J2K film")


def _films(root: Path) -> Path:
    folder = root / "dicom"
    folder.mkdir(parents=True)
    pixels = phantom(1000, 800)
    native = make_dataset(pixels, bits_stored=12, WindowCenter=2048, WindowWidth=4096)
    (folder / "native.dcm").write_bytes(dicom_bytes(native))
    j2k = make_dataset(
        pixels, bits_stored=12, transfer_syntax=JPEG2000Lossless, WindowCenter=2048, WindowWidth=4096
    )
    codestream = imagecodecs.jpeg2k_encode(pixels, codecformat="J2K", bitspersample=12)
    j2k.PixelData = encapsulate([bytes(codestream)])
    (folder / "j2k.dcm").write_bytes(dicom_bytes(j2k))
    return root


def test_decode_bench_reports_every_film_and_both_pools(tmp_path: Path, tiny_bundle: Path) -> None:
    out_json, out_md = tmp_path / "decode.json", tmp_path / "decode.md"
    args = ["decode", "--model-dir", str(tiny_bundle), "--data-dir", str(_films(tmp_path / "data"))]
    args += ["--rounds", "2", "--pool-segments", "2", "--pool-seconds", "0.3", "--pool-workers", "1"]
    assert bench_main([*args, "--out-json", str(out_json), "--out-md", str(out_md)]) == 0

    result = json.loads(out_json.read_text())
    rows = {row["file"]: row for row in result["films"]["films"]}
    assert rows["j2k"]["reduction"] == 4  # tiny bundle: 64 px input, so at least 128 px kept
    assert rows["native"]["reduction"] == 1
    assert all(row["full_ms"] > 0 and row["reduced_ms"] > 0 for row in rows.values())
    assert rows["native"]["input_max_diff"] == rows["native"]["probability_max_diff"] == 0.0
    assert 0.0 < rows["j2k"]["input_mean_diff"] <= 0.01 and rows["j2k"]["input_max_diff"] <= 0.5
    assert result["films"]["model_ms"]["p50"] > 0
    (pools,) = result["pools"]
    assert pools["workers"] == 1
    for kind in ("threads", "processes"):
        assert pools[kind]["decodes_per_s"] > 0 and pools[kind]["model_per_s"] > 0
    assert result["command"].startswith("medslip-bench decode --model-dir")
    text = out_md.read_text()
    assert "| j2k | 1000 x 800 | JPEG 2000 Image Compression (Lossless Only) | 1/4 |" in text
    assert "| processes |" in text and "Hardware:" in text
