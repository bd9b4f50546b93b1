"""Free-text prompts and MS-CXR phrase grounding: the prompt format, scoring through the model's own text
encoder on real NIH films (tiny bundle, then the shipped bundle), and each MS-CXR phrase grounded by its
own text beside its category's entity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from app.contract.bundle import BundleError, resolve_default_bundle
from app.contract.vocabulary import ANATOMY, PATHOLOGY
from tests.fixtures.tiny_bundle import build_tiny_bundle, tiny_bundle  # noqa: F401  (fixture)
from tests.support.training.protocol_trees import write_cxr14_tree, write_mscxr_tree
from tests.support.training.tiny_bert import write_tiny_bert
from training.evaluation.predictors import OnnxPredictor, TorchPredictor
from training.export.bundle import load_models
from training.export.graph import ImageModelGraph
from training.model import create_model, save_checkpoint
from training.model.grounding import default_grounding
from training.model.text_encoder import TextEncoder
from training.protocols.cli import main
from training.protocols.cxr14 import read_cxr14
from training.protocols.mscxr import read_mscxr
from training.protocols.prompts import (
    DEFAULT_PROMPTS,
    Prompt,
    PromptError,
    entity_mapping,
    parse_prompt,
    plan_queries,
)
from training.protocols.stream import StreamSettings
from training.protocols.zeroshot import score_dataset

MODEL_STORE = Path(__file__).resolve().parents[3] / "model_store"
SETTINGS = StreamSettings(batch_size=8, workers=1, progress=False)
OTHER_TEXT = "patchy opacity in the left lower lobe"


def _scores(rows: list[dict[str, Any]], name: str) -> NDArray[np.float64]:
    return np.array([row["scores"][name] for row in rows], dtype=np.float64)


def _bundle_without_text_encoder(root: Path) -> Path:
    """A valid bundle whose metadata says it has no text encoder (`"text_encoder": null`)."""
    bundle = build_tiny_bundle(root, with_text_encoder=False)
    metadata = json.loads((bundle / "metadata.json").read_text(encoding="utf-8"))
    (bundle / "metadata.json").write_text(json.dumps({**metadata, "text_encoder": None}), encoding="utf-8")
    return bundle


def test_prompt_format_entity_text_and_bare_names() -> None:
    assert parse_prompt("pneumonia") == Prompt("entity", "pneumonia")
    assert parse_prompt("entity:effusion") == Prompt("entity", "effusion")
    assert parse_prompt("text: air in the pleural space ") == Prompt("text", "air in the pleural space")
    for empty in ("text:", "entity: ", ""):
        with pytest.raises(PromptError, match="empty"):
            parse_prompt(empty)
    names = ("pneumonia", "effusion")
    mapping = {"A": "pneumonia", "B": "text:fluid", "C": "entity:effusion", "D": "text:fluid",
               "E": "text:air"}
    plan = plan_queries(mapping, names)
    assert plan.texts == ("fluid", "air")  # equal texts share one row, after the book
    assert plan.rows == {"A": 0, "B": 2, "C": 1, "D": 2, "E": 3}
    with pytest.raises(PromptError, match="covid"):
        plan_queries({"A": "entity:covid"}, names)
    with pytest.raises(PromptError, match="fine-tuning needs an entity"):
        entity_mapping(mapping, ["A", "B"])


@pytest.mark.shared_data
def test_free_text_prompts_score_real_films_through_the_bundle_text_encoder(
    shared_data: Path, tmp_path: Path, tiny_bundle: Path  # noqa: F811
) -> None:
    data = read_cxr14(write_cxr14_tree(shared_data, tmp_path / "cxr14", n_plain=4).root)
    predictor = OnnxPredictor(tiny_bundle)
    assert predictor.info.text_encoder == "tiny-text/0.0.1"
    entities = plan_queries(DEFAULT_PROMPTS["cxr14"], predictor.info.pathology)
    # The tiny bundle's book encodes each entity's name: "pneumonia" as free text is that very query.
    texts = {**DEFAULT_PROMPTS["cxr14"], "Pneumonia": "text:pneumonia", "Effusion": f"text:{OTHER_TEXT}"}
    plan = plan_queries(texts, predictor.info.pathology)
    assert set(plan.texts) == {"pneumonia", OTHER_TEXT}
    assert plan.rows["Effusion"] == len(PATHOLOGY) + plan.texts.index(OTHER_TEXT)
    by_entity, _ = score_dataset(predictor, data, entities, partial_dir=tmp_path / "a", settings=SETTINGS)
    # same partial folder: rows made with other prompts must be rescored, not reused
    by_text, _ = score_dataset(predictor, data, plan, partial_dir=tmp_path / "a", settings=SETTINGS)
    assert len(by_text) == len(by_entity) > 8
    assert [row["key"] for row in by_text] == [row["key"] for row in by_entity]
    np.testing.assert_allclose(_scores(by_text, "Pneumonia"), _scores(by_entity, "Pneumonia"), atol=1e-5)
    effusion_text = _scores(by_text, "Effusion")
    assert ((effusion_text > 0) & (effusion_text < 1)).all()
    assert not np.allclose(effusion_text, _scores(by_entity, "Effusion"), atol=1e-3)  # another query
    np.testing.assert_allclose(_scores(by_text, "Atelectasis"), _scores(by_entity, "Atelectasis"), atol=1e-6)


@pytest.mark.shared_data
def test_cli_free_text_prompts_are_reported_and_refused_without_a_text_encoder(
    shared_data: Path, tmp_path: Path, tiny_bundle: Path  # noqa: F811
) -> None:
    write_cxr14_tree(shared_data, tmp_path / "data" / "cxr14", n_plain=4)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"cxr14": {"Effusion": f"text:{OTHER_TEXT}"}}), encoding="utf-8")
    argv = ["--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--tasks", "zeroshot",
            "--datasets", "cxr14", "--prompts", str(prompts), "--no-progress"]
    assert main([*argv, "--bundle", str(tiny_bundle)]) == 0
    report = json.loads((tmp_path / "out" / "benchmark.json").read_text(encoding="utf-8"))
    assert report["prompts"]["cxr14"]["Effusion"] == f"text:{OTHER_TEXT}"
    assert report["evaluated"]["text_encoder"] == "tiny-text/0.0.1"
    assert report["zero_shot"]["cxr14"]["classes"]["Effusion"]["n_test"] > 0
    markdown = (tmp_path / "out" / "benchmark.md").read_text(encoding="utf-8")
    assert f"Effusion -> text:{OTHER_TEXT}" in markdown
    bare = _bundle_without_text_encoder(tmp_path / "bare")
    with pytest.raises(SystemExit, match="need a text encoder"):
        main([*argv, "--bundle", str(bare)])


@pytest.mark.shared_data
def test_description_as_free_text_scores_like_its_entity_with_the_shipped_bundle(
    shared_data: Path, tmp_path: Path
) -> None:
    """The shipped book holds the text encoder's embeddings of the entity descriptions, so the same
    description typed as free text must score the same (fp16 book: close, not bit-equal)."""
    try:
        bundle = resolve_default_bundle(MODEL_STORE, "medslip-cxr")
    except BundleError as exc:
        pytest.skip(f"no shipped bundle in model_store/: {exc}")
    predictor = OnnxPredictor(bundle)
    if predictor.info.text_encoder is None:
        pytest.skip("the shipped bundle has no text encoder")
    metadata = json.loads((bundle / "metadata.json").read_text(encoding="utf-8"))
    pathology = metadata["pathology"]
    descriptions = dict(zip(pathology["names"], pathology["query_texts"], strict=True))
    classes = {"Pneumonia": "pneumonia", "Effusion": "effusion", "Cardiomegaly": "cardiomegaly"}
    mapping = {**{name: entity for name, entity in classes.items()},
               **{f"{name} (text)": f"text:{descriptions[entity]}" for name, entity in classes.items()}}
    data = read_cxr14(write_cxr14_tree(shared_data, tmp_path / "cxr14", n_plain=4).root)
    plan = plan_queries(mapping, predictor.info.pathology)
    rows, _ = score_dataset(predictor, data, plan, partial_dir=tmp_path / "p", settings=SETTINGS,
                            max_images=2)
    assert len(rows) == 4
    for name in classes:
        np.testing.assert_allclose(_scores(rows, f"{name} (text)"), _scores(rows, name), atol=1e-3)


@pytest.mark.shared_data
def test_mscxr_phrases_are_grounded_by_their_own_text(
    shared_data: Path, tmp_path: Path, tiny_bundle: Path  # noqa: F811
) -> None:
    # "pneumonia" is the tiny book's own pneumonia query: its phrase figures must equal the entity's
    write_mscxr_tree(shared_data, tmp_path / "data" / "mscxr",
                     phrases=("pneumonia", "small left effusion", "enlarged heart"))
    out = tmp_path / "out"
    argv = ["--data-root", str(tmp_path / "data"), "--out", str(out), "--tasks", "grounding",
            "--datasets", "mscxr", "--no-progress"]
    assert main([*argv, "--bundle", str(tiny_bundle)]) == 0
    report = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    section = report["grounding"]["mscxr"]
    assert section["all"]["n"] == 3 and section["phrases"]["all"]["n"] == 3
    assert set(section["phrases"]["classes"]) == {"Pneumonia", "Pleural Effusion", "Cardiomegaly"}
    for metric in ("pointing_game", "iou", "dice", "cnr"):
        assert section["phrases"]["classes"]["Pneumonia"][metric] == pytest.approx(
            section["classes"]["Pneumonia"][metric], abs=1e-4)
    assert "| MS-CXR phrases | all | 3 (box) |" in (out / "benchmark.md").read_text(encoding="utf-8")
    data = read_mscxr(tmp_path / "data" / "mscxr")
    assert sorted(p for phrases in data.phrases.values() for p in phrases) == [
        "enlarged heart", "pneumonia", "small left effusion"]
    bare = _bundle_without_text_encoder(tmp_path / "bare")
    assert main([*argv, "--bundle", str(bare)]) == 0  # no encoder: category grounding only
    report = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    assert "phrases" not in report["grounding"]["mscxr"] and report["grounding"]["mscxr"]["all"]["n"] == 3


@pytest.mark.shared_data
def test_checkpoint_predictor_encodes_free_text_with_its_config_encoder(
    shared_data: Path, tmp_path: Path
) -> None:
    """A checkpoint whose book was encoded by its config's text encoder: the same text as a `text:` prompt
    goes through that encoder and the model's query path, and scores as the entity."""
    encoder_dir = write_tiny_bert(tmp_path / "bert", hidden_size=16)
    torch.manual_seed(0)
    model = create_model("medslip_resnet18", image_size=64, n_layers=1, d_model=32, n_heads=4, ffn_dim=64,
                         text_dim=16, text_encoder=str(encoder_dir))
    encoder = TextEncoder.from_config(model.config)
    model.set_query_books(encoder.encode([name.replace("_", " ") for name in PATHOLOGY]),
                          encoder.encode([name.replace("_", " ") for name in ANATOMY]))
    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(checkpoint, model.eval())
    loaded, _ = load_models(checkpoint, None)
    predictor = TorchPredictor(ImageModelGraph(loaded, None, default_grounding(False)), checkpoint)
    assert predictor.info.text_encoder == "bert"
    data = read_cxr14(write_cxr14_tree(shared_data, tmp_path / "cxr14", n_plain=4).root)
    mapping = {"Pneumonia": "pneumonia", "Pneumonia (text)": "text:pneumonia", "Other": f"text:{OTHER_TEXT}"}
    rows, _ = score_dataset(predictor, data, plan_queries(mapping, PATHOLOGY), partial_dir=tmp_path / "p",
                            settings=SETTINGS, max_images=2)
    assert len(rows) == 4
    np.testing.assert_allclose(_scores(rows, "Pneumonia (text)"), _scores(rows, "Pneumonia"), atol=1e-5)
    assert not np.allclose(_scores(rows, "Other"), _scores(rows, "Pneumonia"), atol=1e-4)
