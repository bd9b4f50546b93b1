"""Image-model export: contract I/O, ONNX Runtime parity with PyTorch, complete verified bundle."""

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from app.contract.bundle_metadata import BundleMetadata, TextEncoderMetadata
from app.contract.graphs import SCHEMA_VERSION
from app.contract.vocabulary import OUTPUT_NAMES
from app.graph_precision import fp32_graph_bytes
from app.runtime import CPU
from tests.support.training.tiny_models import IMAGE_SIZE, TEXT_DIM, tiny_model, write_tiny_checkpoints
from training.export.bundle import (
    export_bundle,
    load_models,
    main,
    operating_points,
    text_encoder_entry,
    training_summary,
)
from training.export.graph import ImageModelGraph
from training.export.onnx_tools import cpu_session, run_session

REPORT = {
    "split": "val", "n_images": 4, "evaluated": {"kind": "checkpoint"},
    "classification": {"all": {
        "pneumonia": {"n_pos": 3, "n_neg": 1, "auroc": 0.67, "max_f1": 0.86, "threshold": 0.42,
                      "target_sensitivity": 0.9, "threshold_at_target_sensitivity": 0.3},
        "effusion": {"n_pos": 0, "n_neg": 4, "auroc": None, "max_f1": None, "threshold": None},
    }},
}
BALANCED = {"n_pos": 3, "n_neg": 1, "auroc": 0.67, "max_f1": 0.86, "threshold": 0.42,
            "balanced_threshold": 0.61, "balanced_sensitivity": 0.667, "balanced_specificity": 1.0}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("export")
    checkpoint, seg_checkpoint = write_tiny_checkpoints(folder)
    report = folder / "report.json"
    report.write_text(json.dumps(REPORT))
    store = folder / "model_store"
    code = main(["--checkpoint", str(checkpoint), "--seg-checkpoint", str(seg_checkpoint), "--name", "tiny",
                 "--version", "0.0.1", "--out", str(store), "--eval-report", str(report)])
    assert code == 0
    return store / "tiny" / "0.0.1", checkpoint, seg_checkpoint


def test_bundle_has_every_contract_key_and_verifies(exported: tuple[Path, Path, Path]) -> None:
    bundle, _, _ = exported
    assert BundleMetadata.problems(bundle) == []
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert set(BundleMetadata.REQUIRED_KEYS) <= set(metadata)
    assert sorted(metadata["files"]) == ["MODEL_CARD.md", "anatomy_queries.npy", "classify_model.onnx",
                                         "image_model.onnx", "pathology_queries.npy"]
    assert metadata["schema_version"] == SCHEMA_VERSION
    assert list(metadata["graphs"]["classify_model"]["outputs"]) == ["pathology_probs"]
    assert metadata["graphs"]["image_model"]["outputs"]["pathology_maps"] == ["B", "Qp", 4, 4]
    assert metadata["segmentation"]["structures"][0] == "right_lung"
    assert metadata["preprocessing"]["image_size"] == IMAGE_SIZE
    assert metadata["operating_points"] == {"pneumonia": {
        "threshold": 0.42, "source": "max-F1 on val (3 pos / 1 neg)", "auroc": 0.67,
        "target_sensitivity": 0.9, "threshold_at_target_sensitivity": 0.3}}
    assert np.load(bundle / "pathology_queries.npy").shape == (75, TEXT_DIM)
    assert "pneumonia" in (bundle / "MODEL_CARD.md").read_text()


def test_onnx_matches_torch_for_other_batch_sizes_and_query_counts(exported: tuple[Path, Path, Path]) -> None:
    bundle, checkpoint, seg_checkpoint = exported
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert all(v <= 1e-4 for k, v in metadata["graphs"]["image_model"]["parity_max_abs_diff"].items()
               if k != "segmentation_logits")
    graph = ImageModelGraph(*load_models(checkpoint, seg_checkpoint))
    session = cpu_session(bundle / "image_model.onnx")
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    generator = torch.Generator().manual_seed(1)
    for batch, n_queries in ((1, 1), (3, 9)):
        image = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
        queries = torch.randn(n_queries + 2, TEXT_DIM, generator=generator)
        queries = torch.nn.functional.normalize(queries, dim=-1)
        pathology, anatomy = queries[:n_queries], queries[n_queries:]  # (Qp, T), (2, T)
        with torch.no_grad():
            expected = graph(image, pathology, anatomy)
        actual = run_session(session, {"image": image.numpy(), "pathology_queries": pathology.numpy(),
                                       "anatomy_queries": anatomy.numpy()})
        assert actual["pathology_probs"].shape == (batch, n_queries)
        assert actual["anatomy_maps"].shape == (batch, 2, 4, 4)
        assert actual["segmentation_logits"].shape == (batch, 5, IMAGE_SIZE, IMAGE_SIZE)
        for name, reference in zip(OUTPUT_NAMES, expected, strict=True):
            np.testing.assert_allclose(actual[name], reference.numpy(), atol=1e-4, rtol=0, err_msg=name)


def test_classify_graph_matches_torch_and_the_full_graph(exported: tuple[Path, Path, Path]) -> None:
    """The classification graph computes the full graph's `pathology_probs` (same weights), and nothing
    else: no anatomy stream, no segmentation decoder."""
    bundle, checkpoint, seg_checkpoint = exported
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert metadata["graphs"]["classify_model"]["parity_max_abs_diff"]["pathology_probs"] <= 1e-4
    graph = ImageModelGraph(*load_models(checkpoint, seg_checkpoint))
    classify, full = cpu_session(bundle / "classify_model.onnx"), cpu_session(bundle / "image_model.onnx")
    assert [i.name for i in classify.get_inputs()] == ["image", "pathology_queries"]
    assert [o.name for o in classify.get_outputs()] == ["pathology_probs"]
    def convolutions(file: str) -> int:
        return sum(node.op_type == "Conv" for node in onnx.load(str(bundle / file)).graph.node)

    # the segmentation decoder's convolutions are gone
    assert 0 < convolutions("classify_model.onnx") < convolutions("image_model.onnx")
    generator = torch.Generator().manual_seed(2)
    image = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    queries = torch.nn.functional.normalize(torch.randn(5, TEXT_DIM, generator=generator), dim=-1)
    with torch.no_grad():
        expected = graph(image, queries[:3], queries[3:])[0]
    probs = run_session(classify, {"image": image.numpy(), "pathology_queries": queries[:3].numpy()})
    np.testing.assert_allclose(probs["pathology_probs"], expected.numpy(), atol=1e-4, rtol=0)
    both = run_session(full, {"image": image.numpy(), "pathology_queries": queries[:3].numpy(),
                              "anatomy_queries": queries[3:].numpy()})
    np.testing.assert_allclose(probs["pathology_probs"], both["pathology_probs"], atol=1e-5, rtol=0)


def test_a_version_is_never_overwritten(exported: tuple[Path, Path, Path]) -> None:
    bundle, checkpoint, _ = exported
    with pytest.raises(FileExistsError):
        export_bundle(checkpoint=checkpoint, seg_checkpoint=None, name="tiny", version="0.0.1",
                      store=bundle.parent.parent)


@pytest.mark.slow
def test_fp16_export_keeps_float32_io_and_records_drift(exported: tuple[Path, Path, Path]) -> None:
    bundle, checkpoint, _ = exported
    fp16 = export_bundle(checkpoint=checkpoint, seg_checkpoint=None, name="tiny", version="0.0.1-fp16",
                         store=bundle.parent.parent, fp16=True)
    metadata = json.loads((fp16 / "metadata.json").read_text())
    graph = metadata["graphs"]["image_model"]
    assert graph["precision"] == "fp16" and metadata["segmentation"]["structures"] == []
    assert 0.0 < graph["parity_max_abs_diff"]["pathology_probs"] < 1e-2
    session = cpu_session(fp16 / "image_model.onnx")
    assert {i.type for i in session.get_inputs()} == {"tensor(float)"}
    outputs = run_session(session, {"image": np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32),
                                    "pathology_queries": np.load(fp16 / "pathology_queries.npy"),
                                    "anatomy_queries": np.load(fp16 / "anatomy_queries.npy")})
    assert outputs["pathology_probs"].dtype == np.float32
    assert outputs["segmentation_logits"].shape == (1, 0, IMAGE_SIZE, IMAGE_SIZE)
    assert metadata["graphs"]["classify_model"]["precision"] == "fp16"
    # fp32 compute of the fp16 weights (the service's CPU default) agrees with fp16 compute.
    upcast = ort.InferenceSession(fp32_graph_bytes(fp16 / "classify_model.onnx"), providers=[CPU])
    stored = cpu_session(fp16 / "classify_model.onnx")
    feeds = {"image": np.ones((2, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32),
             "pathology_queries": np.load(fp16 / "pathology_queries.npy")}
    np.testing.assert_allclose(upcast.run(None, feeds)[0], stored.run(None, feeds)[0], atol=5e-3, rtol=0)


def test_text_encoder_of_another_width_is_refused(tmp_path: Path) -> None:
    encoder_dir = tmp_path / "text-encoders" / "other" / "1"
    encoder_dir.mkdir(parents=True)
    (encoder_dir / "text_encoder.onnx").write_bytes(b"graph")
    TextEncoderMetadata(schema_version=1, name="other", version="1", dim=384, max_length=64, pooling="mean",
                        normalize=True).write(encoder_dir)
    with pytest.raises(ValueError, match="does not match"):
        text_encoder_entry(encoder_dir, tmp_path / "tiny" / "1", tiny_model())


def test_operating_points_skip_findings_without_a_threshold() -> None:
    assert list(operating_points(REPORT)) == ["pneumonia"]
    assert operating_points(None) == {}


def test_operating_points_prefer_the_balanced_threshold_over_max_f1() -> None:
    report = {"split": "val", "classification": {"all": {"pneumonia": BALANCED}}}
    point = operating_points(report)["pneumonia"]
    assert point["threshold"] == 0.61
    assert point["source"].startswith("Youden's J on val (3 pos / 1 neg)")
    assert "specificity 1.000" in point["source"]


def test_training_summary_keeps_only_json_safe_training_facts() -> None:
    extra = {
        "step": 300,
        "epoch": 2,
        "rng": {"torch": b"state"},
        "optimizer": {},
        "train_config": {"data": {"manifests": [Path("covid.jsonl")], "image_size": 224}, "run": {},
                         "schedule": {"epochs": 5}, "optim": {"lr": 3e-4}},
    }
    assert training_summary(extra) == {
        "step": 300,
        "epoch": 2,
        "data": {"manifests": ["covid.jsonl"], "image_size": 224},
        "schedule": {"epochs": 5},
        "optim": {"lr": 3e-4},
    }
    assert training_summary({}) == {}


def test_a_shared_frozen_trunk_is_computed_once_in_the_graph(exported: tuple[Path, Path, Path]) -> None:
    bundle, checkpoint, seg_checkpoint = exported
    model, segmentation = load_models(checkpoint, seg_checkpoint)
    assert segmentation is not None and segmentation.trunk is model.res_features
    trunk_convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.res_features.modules())
    head_convs = sum(isinstance(m, torch.nn.Conv2d) for m in segmentation.head.modules())
    for name, convs in (("image_model.onnx", trunk_convs + head_convs), ("classify_model.onnx", trunk_convs)):
        ops = [node.op_type for node in onnx.load(str(bundle / name)).graph.node]
        assert ops.count("Conv") == convs, name
        # a trunk traced twice leaves one copy's batch norms unfused beside the other's convolutions
        assert "BatchNormalization" not in ops, name


@pytest.mark.parametrize(("auroc", "sensitivity", "specificity"), [
    (0.3, 1.0, 0.0),  # no threshold separates
    (0.45, 0.3, 0.8),  # one threshold looks useful, but the score ranks worse than chance overall
    (0.7, 0.5, 0.5),  # sensitivity + specificity = 1: a coin flip
])
def test_a_finding_no_better_than_chance_gets_no_operating_point(
    auroc: float, sensitivity: float, specificity: float
) -> None:
    chance = {**BALANCED, "auroc": auroc, "balanced_sensitivity": sensitivity,
              "balanced_specificity": specificity}
    report = {"split": "val", "classification": {"all": {"nodule": chance, "pneumonia": BALANCED}}}
    assert list(operating_points(report)) == ["pneumonia"]


def test_a_prior_head_gives_the_maps_their_prior_and_the_mask_head_the_masks(tmp_path: Path) -> None:
    """The exported graph runs both heads on the one trunk; its maps are those of a one-head model whose
    head is the prior head, its masks those of the mask head, each matched by ONNX Runtime."""
    checkpoint, seg_checkpoint = write_tiny_checkpoints(tmp_path, prior_head=True)
    bundle = export_bundle(checkpoint=checkpoint, seg_checkpoint=seg_checkpoint, name="tiny", version="1",
                           store=tmp_path / "store")
    finding_maps = json.loads((bundle / "metadata.json").read_text())["graphs"]["image_model"]["finding_maps"]
    assert finding_maps["prior_head"] == "own"

    model, segmentation = load_models(checkpoint, seg_checkpoint)
    assert segmentation is not None and segmentation.prior_head is not None
    prior_only = copy.deepcopy(segmentation)
    prior_only.head, prior_only.prior_head = prior_only.prior_head, None
    graph, reference = ImageModelGraph(model, segmentation), ImageModelGraph(model, prior_only)
    graph.grounding = reference.grounding = "layer_mean_prior"
    image = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(3))
    queries = (model.pathology_book, model.anatomy_book)
    with torch.no_grad():
        outputs, expected = graph(image, *queries), reference(image, *queries)
        masks = segmentation.head(segmentation.trunk.forward_stages(image), (IMAGE_SIZE, IMAGE_SIZE))
    assert torch.equal(outputs[1], expected[1])  # pathology_maps: the prior head's prior
    assert torch.equal(outputs[4], masks)  # segmentation_logits: the mask head
    assert not torch.equal(outputs[4], expected[4])
    masks_as_prior = copy.deepcopy(segmentation)
    masks_as_prior.prior_head = None
    plain = ImageModelGraph(model, masks_as_prior, "layer_mean_prior")
    with torch.no_grad():
        assert not torch.allclose(plain(image, *queries)[1], outputs[1])  # the prior does move the maps

    feeds = {"image": image.numpy(), "pathology_queries": queries[0].numpy(),
             "anatomy_queries": queries[1].numpy()}
    onnx_outputs = run_session(cpu_session(bundle / "image_model.onnx"), feeds)
    np.testing.assert_allclose(onnx_outputs["pathology_maps"], outputs[1].numpy(), atol=1e-4)
    def convs(graph: str) -> int:
        return sum(node.op_type == "Conv" for node in onnx.load(str(bundle / graph)).graph.node)

    def torch_convs(*modules: torch.nn.Module) -> int:
        return sum(isinstance(m, torch.nn.Conv2d) for module in modules for m in module.modules())

    trunk = model.res_features
    assert convs("image_model.onnx") == torch_convs(trunk, segmentation.head, segmentation.prior_head)
    assert convs("ground_model.onnx") == torch_convs(trunk, segmentation.prior_head)  # no mask decoder
    ground = run_session(cpu_session(bundle / "ground_model.onnx"), feeds)
    assert sorted(ground) == sorted(OUTPUT_NAMES[:4])
    np.testing.assert_allclose(ground["pathology_maps"], outputs[1].numpy(), atol=1e-4)
    np.testing.assert_allclose(ground["pathology_probs"], outputs[0].numpy(), atol=1e-4)
    assert BundleMetadata.problems(bundle) == []
