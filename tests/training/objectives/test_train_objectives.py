"""Pretraining with the extra objectives: every term falls on real films, resume is exact, the MeDSLIP
checkpoint holds no objective weights, and disabled entries leave MeDSLIP alone untouched."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support.training.resume import straight_and_resumed
from training.data.dataset import PretrainDataset
from training.data.manifest import ManifestRecord, write_manifest
from training.data.sources.registry import load_source
from training.model import MeDSLIP, load_checkpoint
from training.objectives import OBJECTIVE_TERMS, setup
from training.objectives.regions import region_links
from training.objectives.text_bank import Encode, report_sentences
from training.tasks.finetune_seg import SEGMENTATION_CHECKPOINT
from training.tasks.train import MEDSLIP_CHECKPOINT, build_trainer, main, save_final_models
from training.trainer.config import TrainConfig, load_config

TINY = Path(__file__).resolve().parents[3] / "training" / "configs" / "tiny.yaml"
SMALL_MODEL = "model.overrides={n_layers: 1, ffn_dim: 128, d_model: 64, dropout: 0.0}"
#: Every term, with heads small enough for a 2-core test; the other settings are the defaults.
SMALL_HEADS = {
    "asg_ira": "{hidden_dim: 64, tag_d_model: 64, tag_ffn_dim: 128, tag_layers: 2, tag_dropout: 0.0}",
    "mlip_psm": "{hidden_dim: 64}",
}


def objectives(*, enabled: bool = True, tag_dropout: float = 0.0) -> str:
    """The `objectives=` override listing every term."""
    entries = []
    for name in OBJECTIVE_TERMS:
        settings = SMALL_HEADS.get(name, "{}").replace("tag_dropout: 0.0", f"tag_dropout: {tag_dropout}")
        entries.append(f"{{name: {name}, enabled: {str(enabled).lower()}, settings: {settings}}}")
    return f"objectives=[{', '.join(entries)}]"

LOAD_ENCODER = setup.default_encode  # the real loader, before any test patches it


@pytest.fixture(scope="module")
def cached_encode() -> Iterator[Callable[..., Encode]]:
    """The real frozen text encoder, loaded once for the module instead of once per built trainer."""
    encode: dict[str, Encode] = {}

    def load(medslip: MeDSLIP) -> Encode:
        if "encode" not in encode:
            encode["encode"] = LOAD_ENCODER(medslip)
        return encode["encode"]

    yield load


@pytest.fixture
def one_encoder(monkeypatch: pytest.MonkeyPatch, cached_encode: Callable[..., Encode]) -> None:
    monkeypatch.setattr(setup, "default_encode", cached_encode)


def distinct_region_texts(report: str) -> int:
    """How many different sentence sets name the lung regions (a lone set gives ARSA no negative)."""
    links = region_links(report_sentences(report))[:8]  # (8, M) both lungs and their zones
    return len({tuple(row) for row in links if row.any()})


def real_manifest(folder: Path) -> Path:
    """12 covid-chestxray training films with distinct notes that name at least two lung regions with
    different sentences, and 4 JSRT films (organ masks, template text): every term has a contrast."""
    covid = load_source("covid", "{shared}/covid-chestxray")
    picked: dict[str, ManifestRecord] = {}
    for record in covid:
        text = record.report or ""
        usable = record.split == "train" and bool(record.masks or record.boxes) and text not in picked
        if usable and distinct_region_texts(text) >= 2:
            picked[text] = record
        if len(picked) == 12:
            break
    jsrt = [r for r in load_source("jsrt", "{shared}/jsrt-scr") if r.split == "train"][:4]
    path = folder / "objectives.jsonl"
    write_manifest([*picked.values(), *jsrt], path)
    return path


def config_for(manifest: Path, out: Path, *overrides: str) -> TrainConfig:
    """tiny.yaml on `manifest` with every objective (an `objectives=` override later replaces them)."""
    torch.set_num_threads(1)
    return load_config(TINY, [
        f"run.out_dir={out}", "run.progress=false", SMALL_MODEL, "model.build_books=false",
        f"data.sources=[{{kind: manifest, path: '{manifest}'}}]", "data.augment=false",
        "run.val_every=1000", objectives(), *overrides,
    ])


@pytest.mark.shared_data
@pytest.mark.usefixtures("one_encoder")
def test_every_objective_term_decreases_and_stays_out_of_the_medslip_checkpoint(
    shared_data: Path, tmp_path: Path
) -> None:
    manifest = real_manifest(tmp_path)
    config = config_for(manifest, tmp_path / "run", "optim.lr=1e-3", "schedule.epochs=12",
                        "schedule.warmup_steps=2")
    trainer = build_trainer(config)
    assert len(trainer.train_set) == 16
    trainer.val_set = None
    history = trainer.fit()
    assert len(history) == 24
    for term in (*OBJECTIVE_TERMS, "total"):
        first = np.mean([step[term] for step in history[:4]])
        last = np.mean([step[term] for step in history[-4:]])
        assert last < first, f"{term} did not decrease: {first:.4f} -> {last:.4f}"

    save_final_models(trainer)
    medslip, _ = load_checkpoint(tmp_path / "run" / MEDSLIP_CHECKPOINT)  # strict: MeDSLIP keys only
    exported = torch.load(tmp_path / "run" / MEDSLIP_CHECKPOINT, weights_only=True)["model"]
    assert set(exported) == set(MeDSLIP(medslip.config).state_dict())
    training = torch.load(tmp_path / "run" / "checkpoint_final.pt", weights_only=True)["model"]
    assert any(name.startswith("objectives.asg.") for name in training)  # resume needs them
    assert any(name.startswith("objectives.mlip.") for name in training)


@pytest.mark.shared_data
@pytest.mark.usefixtures("one_encoder")
def test_resume_with_objectives_reproduces_the_next_step_exactly(shared_data: Path, tmp_path: Path) -> None:
    manifest = real_manifest(tmp_path)

    def config(out: Path, max_steps: int) -> TrainConfig:
        """Batch 4 over 16 films, dropout in the tag decoder on, augmentation on."""
        return config_for(
            manifest, out, "data.batch_size=4", "data.augment=true", "schedule.total_steps=6",
            f"run.max_steps={max_steps}", objectives(tag_dropout=0.1),
        )

    straight, expected, resumed = straight_and_resumed(
        lambda out, n: build_trainer(config(out, n)), tmp_path, 4
    )
    assert (resumed.state.step, resumed.state.batch_in_epoch) == (3, 3)
    assert resumed.fit() == [expected]
    for (name, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def synthetic_manifest(folder: Path) -> Path:
    """4 noise images with a two-lung mask each and a report naming both lungs (no shared data)."""
    rng = np.random.default_rng(0)
    lungs = np.zeros((48, 48), dtype=np.uint8)
    lungs[8:40, 4:20] = 255
    lungs[8:40, 28:44] = 255
    Image.fromarray(lungs).save(folder / "lungs.png")
    records = []
    reports = ["Left lower lobe opacity.", "The lungs are clear.", "Right upper lobe consolidation.",
               "Cardiomegaly. No effusion."]
    for index, report in enumerate(reports):
        Image.fromarray((rng.random((48, 48)) * 255).astype(np.uint8)).save(folder / f"img{index}.png")
        records.append(ManifestRecord(image=f"img{index}.png", split="train", source="unit", view="PA",
                                      report=report, masks={"lungs": "lungs.png"}))
    write_manifest(records, folder / "m.jsonl")
    return folder / "m.jsonl"


def test_disabled_entries_train_exactly_as_medslip_alone(tmp_path: Path) -> None:
    manifest = synthetic_manifest(tmp_path)
    histories = []
    for name, listed in (("none", "objectives=[]"), ("disabled", objectives(enabled=False))):
        config = config_for(manifest, tmp_path / name, "data.batch_size=2", "run.max_steps=2",
                            "data.augment=true", listed)
        trainer = build_trainer(config)
        assert type(trainer.model) is MeDSLIP and type(trainer.train_set) is PretrainDataset
        histories.append(trainer.fit())
    assert histories[0] == histories[1]
    assert set(histories[0][0]) == {
        "existence_pathology", "existence_anatomy", "protocl_pathology", "protocl_anatomy", "icl", "total"
    }


@pytest.mark.usefixtures("one_encoder")
@pytest.mark.parametrize(
    "precision",
    [[], ["run.amp=bf16", "run.amp_on_cpu=true", "run.channels_last=true"]],
    ids=["fp32", "bf16-channels-last"],
)
def test_cli_trains_every_objective_beside_joint_segmentation(tmp_path: Path, precision: list[str]) -> None:
    """One step through main(): objective terms and segmentation terms logged, both checkpoints written,
    the MeDSLIP one strictly MeDSLIP, the segmentation one holding only the segmentation head beside it."""
    manifest = synthetic_manifest(tmp_path)
    overrides = [
        f"run.out_dir={tmp_path / 'run'}", "run.progress=false", SMALL_MODEL, "model.build_books=false",
        f"data.sources=[{{kind: manifest, path: '{manifest}'}}]", "data.batch_size=4", "run.max_steps=1",
        "task={segmentation_weight: 1.0, segmentation: {decoder_channels: [16, 8, 8, 8]}}",
        objectives(), *precision,
    ]
    argv = ["--config", str(TINY)]
    for item in overrides:
        argv += ["--override", item]
    assert main(argv) == 0
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert {*OBJECTIVE_TERMS, "segmentation", "seg_dice", "icl"} <= set(logged)
    assert all(math.isfinite(value) for value in logged.values() if isinstance(value, float))
    load_checkpoint(tmp_path / "run" / MEDSLIP_CHECKPOINT)  # strict: MeDSLIP keys only
    segmentation = torch.load(tmp_path / "run" / SEGMENTATION_CHECKPOINT, weights_only=True)
    assert not any(name.startswith("objectives") for name in segmentation["model"])
    assert not any(name.startswith("objectives") for name in segmentation["segmentation_head"])
