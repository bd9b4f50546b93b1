"""Shared reader helpers: split files, dotted image keys, deterministic patient splits, prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.contract.vocabulary import CXR14_TO_PATHOLOGY, PATHOLOGY
from training.protocols.datasets import file_key, find_dataset_dir, read_split_files, three_way_split
from training.protocols.prompts import DEFAULT_PROMPTS, PromptError, load_prompts, query_indices


def test_file_keys_strip_image_suffixes_only() -> None:
    assert file_key("stage_2_train_images/abc-1.dcm") == "abc-1"
    assert file_key("1.2.276.0.7230010.3.1.4.8323329.1000") == "1.2.276.0.7230010.3.1.4.8323329.1000"
    assert file_key("00000061_012.PNG") == "00000061_012"


def test_split_files_of_csv_and_txt(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("label,patientId\n0,a\n1,b\n", encoding="utf-8")
    (tmp_path / "validation.txt").write_text("c extra fields\n\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text("Path,label\nimgs/d.dcm,1\n", encoding="utf-8")
    assert read_split_files(tmp_path) == {"a": "train", "b": "train", "c": "val", "d": "test"}
    assert read_split_files(tmp_path / "absent") is None


def test_three_way_split_is_stable_and_roughly_70_10_20() -> None:
    splits = [three_way_split(f"patient-{i}") for i in range(4000)]
    assert splits == [three_way_split(f"patient-{i}") for i in range(4000)]
    shares = {name: splits.count(name) / len(splits) for name in ("train", "val", "test")}
    assert shares["test"] == pytest.approx(0.2, abs=0.03) and shares["val"] == pytest.approx(0.1, abs=0.03)


def test_dataset_folders_are_found_by_any_of_their_names(tmp_path: Path) -> None:
    (tmp_path / "siim-acr").mkdir()
    assert find_dataset_dir(tmp_path, "siim") == tmp_path / "siim-acr"
    assert find_dataset_dir(tmp_path, "rsna") is None


def test_default_prompts_name_real_entities_and_follow_the_cxr14_mapping(tmp_path: Path) -> None:
    for mapping in DEFAULT_PROMPTS.values():
        assert set(mapping.values()) <= set(PATHOLOGY)
    assert DEFAULT_PROMPTS["cxr14"] == CXR14_TO_PATHOLOGY
    override = tmp_path / "prompts.json"
    override.write_text(json.dumps({"covidx": {"COVID-19": "opacity"}}), encoding="utf-8")
    prompts = load_prompts(override)
    assert prompts["covidx"] == {"COVID-19": "opacity"} and prompts["rsna"] == DEFAULT_PROMPTS["rsna"]
    assert query_indices(prompts["covidx"], PATHOLOGY) == {"COVID-19": PATHOLOGY.index("opacity")}
    with pytest.raises(PromptError, match="covid"):
        query_indices({"COVID-19": "covid"}, PATHOLOGY)
