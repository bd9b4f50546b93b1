"""The default-model recipe's build settings: chosen once, reused on resume, turned into overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.recipes import default_model
from training.recipes.default_card import render_default_card
from training.trainer.config import load_config


def test_auto_precision_follows_native_bf16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default_model, "native_bf16", lambda: False)
    assert default_model.compute_settings(tmp_path / "a", "auto", None)["precision"] == "fp32"
    monkeypatch.setattr(default_model, "native_bf16", lambda: True)
    assert default_model.compute_settings(tmp_path / "b", "auto", 2)["precision"] == "bf16"


def test_a_resumed_build_keeps_the_settings_it_started_with(tmp_path: Path) -> None:
    first = default_model.compute_settings(tmp_path, "fp32", 2)
    assert json.loads((tmp_path / "build.json").read_text()) == first
    assert default_model.compute_settings(tmp_path, "bf16", 1) == first


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_overrides_are_valid_for_the_pretraining_config(precision: str) -> None:
    argv = default_model.run_overrides({"precision": precision, "threads": 2})
    overrides = argv[1::2]
    assert argv[0::2] == ["--override"] * len(overrides)
    pretrain = load_config(default_model.PRETRAIN_CONFIG, overrides)
    segmentation = load_config(default_model.SEG_CONFIG, [*default_model.SEG_OVERRIDES, *overrides])
    assert segmentation.task["freeze_trunk"] is True
    assert segmentation.task["decoder_channels"] == pretrain.task["segmentation"]["decoder_channels"]
    assert segmentation.run.amp == pretrain.run.amp
    masks = load_config(default_model.SEG_CONFIG, [*default_model.MASK_OVERRIDES, *overrides])
    assert masks.task["keep_prior_head"] is True and masks.task["head_init"] == "reset_classifier"
    assert masks.task["decoder_channels"] == segmentation.task["decoder_channels"]  # stage 2's head continues
    assert pretrain.run.threads == 2
    assert (pretrain.run.amp == "bf16") == (precision == "bf16")
    assert pretrain.run.channels_last == (precision == "bf16")


def test_the_recipe_pretrains_on_every_shared_set_with_a_joint_segmentation_head() -> None:
    config = load_config(default_model.PRETRAIN_CONFIG)
    assert {source.kind for source in config.data.sources} == {"covid", "kermany", "jsrt", "nih"}
    assert {kind for kind, _ in default_model.SOURCES.values()} == {"covid", "kermany", "jsrt", "nih"}
    assert config.task["segmentation_weight"] > 0
    assert len(default_model.DEFAULT_SEEDS) >= 3


def test_card_states_the_compute_that_trained_the_model() -> None:
    metadata = {
        "name": "m", "version": "1", "architecture": {"trunk": "resnet18", "image_size": 224},
        "graphs": {"image_model": {"file": "image_model.onnx", "precision": "fp16",
                                   "parity_max_abs_diff": {"pathology_probs": 1e-4}}},
        "training_data": {"compute": {"precision": "fp32", "threads": 2, "cpu": "Test CPU", "cores": 2}},
    }
    card = render_default_card(metadata, {"classification": {}}, "medslip-build-default")
    assert "Test CPU (2 cores), fp32 training, 2 compute thread(s) per process" in card
    assert "not a medical device" in card


def test_card_states_the_gate_and_the_heat_outside_the_chest() -> None:
    maps = {"method": "layer_mean_prior_gated", "prior_structures": ["right_lung", "left_lung", "heart"]}
    metadata = {"name": "m", "version": "1", "architecture": {"trunk": "resnet18", "image_size": 224},
                "graphs": {"image_model": {"file": "image_model.onnx", "finding_maps": maps}}}
    report = {"classification": {}, "grounding": {"heat_outside_chest": {"n_films": 32, "mean": 0.0412,
                                                                         "max_film": 0.0915}}}
    card = render_default_card(metadata, report, "medslip-build-default")
    assert "cells where that probability is below 0.5 get no heat at all" in card
    assert "on the 32 JSRT validation films, 4.1 % of a finding map's heat" in card
    assert "worst film 9.2 %" in card
    plain_graphs = {"image_model": {"file": "image_model.onnx"}}
    plain = render_default_card({**metadata, "graphs": plain_graphs}, {"classification": {}}, "build")
    assert "Heat outside the chest" not in plain and "get no heat at all" not in plain


def test_card_shows_mask_areas_beside_the_expert_areas_and_on_films_without_masks() -> None:
    metadata = {"name": "m", "version": "1", "architecture": {"trunk": "resnet18", "image_size": 224},
                "graphs": {"image_model": {"file": "image_model.onnx"}}}
    report = {
        "classification": {},
        "segmentation": {"heart": {"n": 32, "dice": 0.9, "iou": 0.8, "median_area": 0.081,
                                   "expert_median_area": 0.089}},
        "segmentation_unlabelled": {"nih-cxr14": {"heart": {"n": 250, "median_area": 0.014,
                                                            "share_over_30pct": 0.004}}},
    }
    card = render_default_card(metadata, report, "medslip-build-default")
    assert "| heart | 32 | 0.900 | 0.800 | 8.1 % | 8.9 % |" in card
    assert "| nih-cxr14 | heart | 250 | 1.4 % | 0.4 % |" in card
    older = {"classification": {}, "segmentation": {"heart": {"n": 32, "dice": 0.9, "iou": 0.8}}}
    plain = render_default_card(metadata, older, "medslip-build-default")
    assert "| heart | 32 | 0.900 | 0.800 |\n" in plain and "without expert masks" not in plain


def test_card_names_the_weak_nih_findings_from_the_seed_study() -> None:
    per_seed = {"42": {"nih_auroc_nodule": 0.41, "nih_auroc_hernia": 0.55, "nih_auroc_mass": 0.74,
                       "nih_auroc_normal": 0.45},
                "43": {"nih_auroc_nodule": 0.47, "nih_auroc_hernia": 0.48, "nih_auroc_mass": 0.70,
                       "nih_auroc_normal": 0.44}}
    mean = {k: (per_seed["42"][k] + per_seed["43"][k]) / 2 for k in per_seed["42"]}
    seeds = {"seeds": [42, 43], "per_seed": per_seed, "mean": mean, "sd": {}, "shipped": 42}
    metadata = {"name": "m", "version": "1", "architecture": {"trunk": "resnet18", "image_size": 224},
                "graphs": {"image_model": {"file": "image_model.onnx"}}, "training_data": {"seeds": seeds}}
    card = render_default_card(metadata, {"classification": {}}, "medslip-build-default")
    assert ("`nodule` ranks WORSE than chance on NIH films on every seed, and `hernia` is near chance "
            "(below 0.6 on average): do not use them.") in card
    assert "On the shipped seed" not in card  # hernia is 0.55 on seed 42: below 0.5 on another seed only
    seeds["shipped"] = 43
    card = render_default_card(metadata, {"classification": {}}, "medslip-build-default")
    assert "On the shipped seed, worse than chance on NIH films: `hernia` 0.480." in card
    assert "`mass`" not in card.split("## Known limitations")[1].split("\n- NIH labels")[0]
    assert "`normal`" not in card.split("## Known limitations")[1].split("\n- NIH labels")[0]


def test_card_names_the_mask_stage_only_when_the_recipe_had_one() -> None:
    metadata = {"name": "m", "version": "1", "architecture": {"trunk": "resnet18", "image_size": 224},
                "graphs": {"image_model": {"file": "image_model.onnx"}},
                "training_data": {"segmentation_stage": ["task.freeze_trunk=true"]}}
    plain = render_default_card(metadata, {"classification": {}}, "medslip-build-default")
    assert "outputs are unchanged by it). It then evaluates every seed" in plain
    assert "prior head" not in plain
    metadata["training_data"]["mask_stage"] = ["task.keep_prior_head=true", "run.checkpoint_every=50"]
    staged = render_default_card(metadata, {"classification": {}}, "medslip-build-default")
    assert "further stage (`task.keep_prior_head=true`) that re-draws" in staged
    assert "kept, frozen, as the prior head" in staged


def test_card_states_the_pretraining_augmentation_it_was_trained_with() -> None:
    metadata = {"name": "m", "version": "1", "architecture": {"trunk": "resnet18", "image_size": 224},
                "graphs": {"image_model": {"file": "image_model.onnx"}},
                "training_data": {"data": {"crop_scale": [0.8, 1.0], "randaug_ops": 1,
                                           "randaug_magnitude": 5.0}}}
    card = render_default_card(metadata, {"classification": {}}, "medslip-build-default")
    assert "crops of 80-100 % of the film's area, then 1 RandAugment operation at magnitude 5.0" in card
    metadata["training_data"]["data"] = {"crop_scale": [0.5, 1.0], "randaug_ops": 2}
    card = render_default_card(metadata, {"classification": {}}, "medslip-build-default")
    assert "crops of 50-100 % of the film's area, then 2 RandAugment operations" in card
    metadata["training_data"]["data"] = {"crop_scale": [0.5, 1.0], "randaug_ops": 2, "augment": False}
    card = " ".join(render_default_card(metadata, {"classification": {}}, "medslip-build-default").split())
    assert "lr not recorded, no augmentation," in card
    metadata["training_data"] = {}
    card = render_default_card(metadata, {"classification": {}}, "medslip-build-default")
    assert "augmentation not recorded" in card


def test_card_states_which_sources_were_repeated_per_epoch() -> None:
    sources = [{"kind": "covid", "train_repeat": 1}, {"kind": "jsrt", "train_repeat": 3},
               {"kind": "nih", "train_repeat": 2}]
    metadata = {"name": "m", "version": "1", "architecture": {"trunk": "resnet18", "image_size": 224},
                "graphs": {"image_model": {"file": "image_model.onnx"}},
                "training_data": {"data": {"sources": sources, "augment": False}}}
    card = " ".join(render_default_card(metadata, {"classification": {}}, "medslip-build-default").split())
    assert "(jsrt-scr films repeated 3x, nih-cxr14 films repeated 2x per epoch)" in card
    assert "no augmentation" in card
    sources[2]["origin_repeat"] = {"copy/b": 4}
    card = " ".join(render_default_card(metadata, {"classification": {}}, "medslip-build-default").split())
    assert "nih-cxr14 films repeated 2x (those of the `copy/b` copy 4x) per epoch" in card
    sources[2]["train_repeat"] = 1
    card = " ".join(render_default_card(metadata, {"classification": {}}, "medslip-build-default").split())
    assert "nih-cxr14 films of the `copy/b` copy 4x per epoch" in card
    metadata["training_data"]["data"]["sources"] = [{"kind": "jsrt", "train_repeat": 1}]
    card = " ".join(render_default_card(metadata, {"classification": {}}, "medslip-build-default").split())
    assert "(every film once per epoch)" in card
    metadata["training_data"] = {}
    card = " ".join(render_default_card(metadata, {"classification": {}}, "medslip-build-default").split())
    assert "(jsrt-scr films repeated 3x per epoch)" in card


def test_a_store_elsewhere_gets_its_own_copy_of_the_text_encoder(tmp_path: Path) -> None:
    copied = default_model.store_text_encoder(tmp_path / "store")
    assert copied == tmp_path / "store" / "text-encoders" / "all-minilm-l6-v2" / "1"
    source = default_model.TEXT_ENCODER
    original = sorted(p.relative_to(source) for p in source.rglob("*"))
    assert sorted(p.relative_to(copied) for p in copied.rglob("*")) == original
    assert original  # the repository's encoder is not empty, so the comparison means something
    # the repository's own store links its own encoder, copying nothing
    assert default_model.store_text_encoder(default_model.REPO / "model_store") == default_model.TEXT_ENCODER


def test_an_incomplete_copy_of_the_text_encoder_is_replaced(tmp_path: Path) -> None:
    copied = default_model.store_text_encoder(tmp_path / "store")
    graph = copied / "text_encoder.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])  # an interrupted copy
    (copied / "stray.txt").write_text("left behind", encoding="utf-8")
    assert not default_model.same_text_encoder(copied)
    assert default_model.store_text_encoder(tmp_path / "store") == copied
    assert default_model.same_text_encoder(copied)
    assert not (copied / "stray.txt").exists()
    assert graph.stat().st_size == (default_model.TEXT_ENCODER / "text_encoder.onnx").stat().st_size


def test_a_text_encoder_without_metadata_is_not_the_repositorys(tmp_path: Path) -> None:
    copied = default_model.store_text_encoder(tmp_path / "store")
    (copied / "metadata.json").unlink()
    assert not default_model.same_text_encoder(copied)


def test_card_ranks_the_nih_findings_within_each_copy_and_names_those_at_chance() -> None:
    metadata = {"name": "m", "version": "1", "architecture": {"trunk": "resnet18", "image_size": 224},
                "graphs": {"image_model": {"file": "image_model.onnx", "precision": "fp16"}}}

    def finding(auroc: float, within: float, only: float, positives: tuple[int, int]) -> dict[str, object]:
        return {"auroc": auroc, "within_origin": within, "origin_only": only,
                "origins": {"copy/a": {"n_positive": positives[0], "n_negative": 9, "auroc": within},
                            "copy/b": {"n_positive": positives[1], "n_negative": 9, "auroc": within}}}

    section = {"findings": {"effusion": finding(0.75, 0.74, 0.61, (13, 12)),
                            "nodule": finding(0.62, 0.45, 0.79, (3, 14)),
                            "normal": finding(0.86, 0.40, 0.70, (95, 10))},
               "mean": {"auroc": 0.685, "within_origin": 0.595, "origin_only": 0.70, "n_findings": 2}}
    card = render_default_card(metadata, {"classification": {}, "origin_dependence": {"nih-cxr14": section}},
                               "medslip-build-default")
    assert "| data | finding | n+ (`copy/a` / `copy/b`) | pooled AUROC | within-copy AUROC |" in card
    assert "| nih-cxr14 | nodule | 3 / 14 | 0.620 | 0.450 | 0.790 |" in card
    assert "| nih-cxr14 | mean of 2 (not `normal`) | | 0.685 | 0.595 | 0.700 |" in card
    limits = card[card.index("## Known limitations"):].replace("\n  ", " ")
    assert "knows only the copy reaches a mean AUROC of 0.700" in limits
    assert "Within the copies `nodule` rank at or below chance" in limits  # `normal` is not a finding here
    plain = render_default_card(metadata, {"classification": {}}, "medslip-build-default")
    assert "within-copy" not in plain and "public copies" not in plain
