"""medslip-benchmark on RSNA and SIIM-ACR trees around real DICOMs (tiny bundle): box and mask grounding,
prompt overrides, and what is skipped and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.tiny_bundle import tiny_bundle  # noqa: F401  (fixture)
from tests.support.training.protocol_trees import write_rsna_tree, write_siim_tree
from training.protocols.cli import main


def _data_root(shared: Path, root: Path) -> Path:
    rsna = write_rsna_tree(shared, root / "rsna")
    siim = write_siim_tree(shared, root / "siim-acr")
    for folder, keys in ((rsna, "p-a\np-b\np-c\n"), (siim, "1.2.9.1\n1.2.9.2\n")):
        (folder / "splits").mkdir()
        (folder / "splits" / "test.txt").write_text(keys, encoding="utf-8")
    return root


@pytest.mark.shared_data
def test_rsna_boxes_and_siim_masks_are_grounded_and_missing_sets_skipped(
    shared_data: Path, tmp_path: Path, tiny_bundle: Path  # noqa: F811
) -> None:
    root = _data_root(shared_data, tmp_path / "data")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"rsna": {"Pneumonia": "opacity"}}), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["--data-root", str(root), "--bundle", str(tiny_bundle), "--out", str(out), "--no-progress",
                 "--prompts", str(prompts)]) == 0
    report = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    assert report["prompts"]["rsna"] == {"Pneumonia": "opacity"}
    assert report["zero_shot"]["rsna"]["classes"]["Pneumonia"]["n_test"] == 3
    assert report["zero_shot"]["siim"]["classes"]["Pneumothorax"]["n_test_pos"] == 1
    rsna, siim = report["grounding"]["rsna"]["all"], report["grounding"]["siim"]["all"]
    assert (rsna["n"], rsna["region"]) == (3, "box")
    assert (siim["n"], siim["region"]) == (1, "mask")
    assert report["finetune"] == {}  # a bundle has no trainable weights: said in the log, nothing run
    for name in ("cxr14", "covidx", "mscxr"):
        assert report["datasets"][name]["status"] == "skipped"
    markdown = (out / "benchmark.md").read_text(encoding="utf-8")
    assert "| RSNA | all | 3 (box) |" in markdown and "| SIIM-ACR | all | 1 (mask) |" in markdown


def test_an_entity_the_model_lacks_is_refused_with_the_choices(tmp_path: Path,
                                                              tiny_bundle: Path) -> None:  # noqa: F811
    (tmp_path / "covidx").mkdir()
    (tmp_path / "covidx" / "test.txt").write_text("", encoding="utf-8")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"cxr14": {"Mass": "tumour"}}), encoding="utf-8")
    nih = tmp_path / "cxr14"
    nih.mkdir()
    (nih / "manifest.csv").write_text("image,split\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="tumour"):
        main(["--data-root", str(tmp_path), "--bundle", str(tiny_bundle), "--out", str(tmp_path / "out"),
              "--prompts", str(prompts), "--datasets", "cxr14", "--no-progress"])


def test_unknown_dataset_names_are_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--data-root", str(tmp_path), "--bundle", str(tmp_path), "--out", str(tmp_path),
              "--datasets", "chexpert"])
    assert "chexpert" in capsys.readouterr().err
