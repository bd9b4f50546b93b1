"""medslip-eval: the evaluator and the CLI on a tiny manifest of real images."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from app.contract.imaging import decode_path
from tests.support.training.tiny_models import write_tiny_checkpoints
from training.data.manifest import read_manifest, write_manifest
from training.data.sources import read_covid_chestxray, read_jsrt_scr, read_kermany_pediatric, read_nih_cxr14
from training.evaluation.evaluate import Evaluator, build_report, main
from training.evaluation.labels import load_masks
from training.evaluation.predictors import OnnxPredictor, TorchPredictor
from training.export.bundle import export_bundle, load_models
from training.export.graph import ImageModelGraph


def _tiny_manifest(shared_data: Path, path: Path) -> Path:
    kermany = read_kermany_pediatric(shared_data / "kermany-pediatric")
    normal = [r for r in kermany if r.labels and r.labels["normal"] == 1][:2]
    pneumonia = [r for r in kermany if r.labels and r.labels["pneumonia"] == 1][:2]
    covid = [r for r in read_covid_chestxray(shared_data / "covid-chestxray", frontal_only=True)
             if r.boxes and r.masks][:2]
    jsrt = read_jsrt_scr(shared_data / "jsrt-scr")[:2]
    records = [dataclasses.replace(r, split="val") for r in [*normal, *pneumonia, *covid, *jsrt]]
    write_manifest(records, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_checkpoints(tmp_path_factory.mktemp("eval-ckpt"))


def test_cli_writes_a_report_with_every_section(
    shared_data: Path, checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    manifest = _tiny_manifest(shared_data, tmp_path / "tiny.jsonl")
    checkpoint, seg_checkpoint = checkpoints
    out = tmp_path / "eval"
    assert main(["--checkpoint", str(checkpoint), "--seg-checkpoint", str(seg_checkpoint), "--manifest",
                 str(manifest), "--split", "val", "--out", str(out), "--batch-size", "3"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_images"] == 8
    assert report["n_images_by_source"] == {"covid-chestxray": 2, "jsrt-scr": 2, "kermany-pediatric": 2 + 2}
    normal = report["classification"]["kermany-pediatric"]["normal"]
    assert (normal["n_pos"], normal["n_neg"]) == (2, 2)
    assert 0.0 <= normal["auroc"] <= 1.0 and normal["threshold"] is not None
    assert report["classification"]["all"]["pneumonia"]["n_pos"] == 2 + 2  # kermany + covid
    dependence = report["source_dependence"]  # findings of kermany and covid; jsrt nodule alone: none
    assert set(dependence) == {"normal", "pneumonia"}
    kermany_pneumonia = dependence["pneumonia"]["sources"]["kermany-pediatric"]
    assert (kermany_pneumonia["n_positive"], kermany_pneumonia["n_negative"]) == (2, 2)
    assert report["origin_dependence"] == {}  # every source here is one collection
    right = report["grounding"]["anatomy"]["right_lung_unspec"]
    assert right["n"] == 4 and 0.0 <= right["pointing_game"] <= 1.0
    assert right["region"] == "box (covid-chestxray), mask (jsrt-scr)"
    assert report["segmentation"]["heart"]["n"] == 2 and report["segmentation"]["lungs"]["n"] == 2
    kermany_heart = report["segmentation_unlabelled"]["kermany-pediatric"]["heart"]  # films without masks
    assert kermany_heart["n"] == 4 and 0.0 <= kermany_heart["median_area"] <= 1.0
    assert "jsrt-scr" not in report["segmentation_unlabelled"]  # masked films are scored by Dice instead
    jsrt = [r for r in read_manifest(manifest) if r.source == "jsrt-scr"]
    expert = [load_masks(r, decode_path(r.image).pixels.shape)["heart"].mean() for r in jsrt]
    heart = report["segmentation"]["heart"]  # the reference for the areas on films without masks
    assert heart["expert_median_area"] == pytest.approx(float(np.median(expert)))
    assert 0.0 <= heart["median_area"] <= 1.0
    assert "median_area" not in report["segmentation"]["lungs"]  # a union, not a channel of the head
    outside = report["grounding"]["heat_outside_chest"]  # the two JSRT films have lung and heart masks
    assert outside["n_films"] == 2 and 0.0 <= outside["mean"] <= outside["max_film"] <= 1.0
    assert all((out / name).stat().st_size > 0 for name in report["figures"])
    assert "roc_kermany-pediatric.png" in report["figures"]


def test_nih_films_are_also_ranked_within_the_copy_they_came_from(
    shared_data: Path, checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    """Three validation films of each public copy: the report counts each copy's films per finding."""
    films = [r for r in read_nih_cxr14(shared_data / "nih-cxr14") if r.split == "val"]
    copies = sorted({r.origin for r in films})
    chosen = [r for origin in copies for r in [f for f in films if f.origin == origin][:3]]
    checkpoint, seg_checkpoint = checkpoints
    model, segmentation = load_models(checkpoint, seg_checkpoint)
    predictor = TorchPredictor(ImageModelGraph(model, segmentation, "layer_mean_prior"), checkpoint)
    results = Evaluator(predictor, tmp_path, batch_size=4, max_overlays=0).run(chosen)
    report = build_report(results, predictor, split="val", manifests=[], target_sensitivity=0.9,
                          out_dir=tmp_path)
    nih = report["origin_dependence"]["nih-cxr14"]
    assert "normal" in nih["findings"] and nih["mean"]["n_findings"] == 14  # the mean leaves `normal` out
    for name, summary in nih["findings"].items():
        for origin in copies:
            labelled = [r.labels[name] for r in chosen if r.origin == origin and r.labels]
            assert summary["origins"][origin]["n_positive"] == sum(labelled)
            assert summary["origins"][origin]["n_negative"] == len(labelled) - sum(labelled)
        assert summary["auroc"] == report["classification"]["nih-cxr14"][name]["auroc"]


def test_several_checkpoints_are_evaluated_as_their_ensemble(
    shared_data: Path, checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    """A model averaged with itself scores as the model alone; the report names the ensemble."""
    manifest = _tiny_manifest(shared_data, tmp_path / "tiny.jsonl")
    checkpoint, seg_checkpoint = checkpoints
    common = ["--manifest", str(manifest), "--split", "val", "--max-overlays", "0"]
    assert main(["--checkpoint", str(checkpoint), "--seg-checkpoint", str(seg_checkpoint), *common,
                 "--out", str(tmp_path / "one")]) == 0
    assert main(["--checkpoint", str(checkpoint), str(checkpoint), "--seg-checkpoint", str(seg_checkpoint),
                 str(seg_checkpoint), *common, "--out", str(tmp_path / "two")]) == 0
    one, two = (json.loads((tmp_path / name / "report.json").read_text()) for name in ("one", "two"))
    assert two["evaluated"]["kind"] == "ensemble" and two["evaluated"]["name"] == "tiny.pt + tiny.pt"
    for source, findings in one["classification"].items():
        for name, m in findings.items():
            assert two["classification"][source][name]["auroc"] == pytest.approx(m["auroc"], abs=1e-6)
    heart = one["segmentation"]["heart"]["dice"]
    assert two["segmentation"]["heart"]["dice"] == pytest.approx(heart, abs=1e-6)
    with pytest.raises(SystemExit):  # one segmentation checkpoint for two models
        main(["--checkpoint", str(checkpoint), str(checkpoint), "--seg-checkpoint", str(seg_checkpoint),
              *common, "--out", str(tmp_path / "bad")])


@pytest.mark.slow
def test_bundle_evaluation_scores_the_same_as_the_checkpoint(
    shared_data: Path, checkpoints: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, seg_checkpoint = checkpoints
    records = [dataclasses.replace(r, split="val")
               for r in read_jsrt_scr(shared_data / "jsrt-scr")[:3]]
    bundle = export_bundle(checkpoint=checkpoint, seg_checkpoint=seg_checkpoint, name="tiny", version="1",
                           store=tmp_path / "store")
    torch_results = Evaluator(TorchPredictor(ImageModelGraph(*load_models(checkpoint, seg_checkpoint)),
                                             checkpoint), tmp_path, max_overlays=0).run(records)
    onnx_results = Evaluator(OnnxPredictor(bundle), tmp_path, max_overlays=0).run(records)
    torch_scores = np.array(torch_results.scores["jsrt-scr"]["nodule"])
    onnx_scores = np.array(onnx_results.scores["jsrt-scr"]["nodule"])
    np.testing.assert_allclose(onnx_scores, torch_scores, atol=1e-4, rtol=0)
    for query in ("right_lung_unspec", "left_lung_unspec"):
        ious = [(a.iou, b.iou) for a, b in zip(torch_results.grounding[query], onnx_results.grounding[query],
                                               strict=True)]
        np.testing.assert_allclose(*zip(*ious, strict=True), atol=1e-3)
    heart = [(a["dice"], b["dice"]) for a, b in zip(torch_results.segmentation["heart"],
                                                    onnx_results.segmentation["heart"], strict=True)]
    np.testing.assert_allclose(*zip(*heart, strict=True), atol=1e-3)
