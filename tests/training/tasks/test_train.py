"""Pretraining on real images: every loss term falls, resume is exact, config and schedule behave."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.data.manifest import ManifestRecord, write_manifest
from training.tasks.train import build_trainer, main
from training.trainer.config import (
    ConfigError,
    DataSection,
    OptimSection,
    ScheduleSection,
    SourceSpec,
    TrainConfig,
    load_config,
)
from training.trainer.optim import build_optimizer, build_scheduler, parameter_groups, warmup_cosine_factor
from training.trainer.setup import load_records

TINY = Path(__file__).resolve().parents[3] / "training" / "configs" / "tiny.yaml"
#: A small decoder keeps a step ~0.1 s on one core; the trunk is the real ResNet-18.
SMALL_MODEL = "model.overrides={n_layers: 2, ffn_dim: 256, d_model: 128}"


def tiny_config(tmp_path: Path, *overrides: str) -> TrainConfig:
    torch.set_num_threads(1)
    return load_config(TINY, [f"run.out_dir={tmp_path}", "run.progress=false", SMALL_MODEL, *overrides])


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "precision",
    [[], ["run.amp=bf16", "run.amp_on_cpu=true", "run.channels_last=true"]],
    ids=["fp32", "bf16-channels-last"],  # the default model trains with CPU bf16 autocast
)
def test_every_loss_term_decreases_on_16_real_images(
    shared_data: Path, tmp_path: Path, precision: list[str]
) -> None:
    config = tiny_config(
        tmp_path,
        *precision,
        "model.overrides={n_layers: 2, ffn_dim: 256, d_model: 128, dropout: 0.0}",
        "data.augment=false",
        "optim.lr=1e-3",
        "schedule.epochs=15",
        "schedule.warmup_steps=3",
        "run.log_every=10",
        "run.val_every=1000",
    )
    trainer = build_trainer(config)
    assert len(trainer.train_set) == 16  # 8 covid-chestxray (with notes) + 8 kermany
    trainer.val_set = None  # the overfit check is about the training objective only
    history = trainer.fit()
    assert len(history) == 30
    for term in (
        "existence_pathology",
        "existence_anatomy",
        "protocl_pathology",
        "protocl_anatomy",
        "icl",
        "total",
    ):
        first = np.mean([step[term] for step in history[:5]])
        last = np.mean([step[term] for step in history[-5:]])
        assert last < first, f"{term} did not decrease: {first:.4f} -> {last:.4f}"
    assert (tmp_path / "checkpoint_final.pt").is_file()
    assert (tmp_path / "metrics.jsonl").read_text().count('"split": "train"') == 3


@pytest.mark.shared_data
def test_resume_reproduces_the_next_step_exactly(shared_data: Path, tmp_path: Path) -> None:
    def config(out: Path, max_steps: int) -> TrainConfig:
        """4 covid + 4 kermany images, batch 4 (2 steps per epoch), dropout on, augmentation on."""
        return tiny_config(
            out,
            "data.batch_size=4",
            "data.sources.0.max_records=4",
            "data.sources.1.max_records=4",
            "model.build_books=false",
            "schedule.total_steps=6",
            "run.val_every=1000",
            f"run.max_steps={max_steps}",
        )

    straight = build_trainer(config(tmp_path / "a", 4))
    straight.val_set = None
    straight_history = straight.fit()

    first = build_trainer(config(tmp_path / "b", 3))
    first.val_set = None
    first.fit()  # 3 steps: one full epoch (2 batches) + 1 batch into epoch 1
    resumed = build_trainer(config(tmp_path / "c", 4))
    resumed.val_set = None
    resumed.resume(tmp_path / "b" / "checkpoint_last.pt")
    assert (resumed.state.step, resumed.state.epoch, resumed.state.batch_in_epoch) == (3, 1, 1)
    resumed_history = resumed.fit()

    assert len(resumed_history) == 1
    assert resumed_history[0] == straight_history[3]
    for (name, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "precision",
    [[], ["run.amp=bf16", "run.amp_on_cpu=true", "run.channels_last=true"]],
    ids=["fp32", "bf16-channels-last"],
)
def test_cli_runs_one_step_on_a_manifest(tmp_path: Path, precision: list[str]) -> None:
    """End to end through main() on synthetic PNGs listed in a manifest (no shared data needed)."""
    rng = np.random.default_rng(0)
    records = []
    for index in range(4):
        path = tmp_path / f"img{index}.png"
        Image.fromarray((rng.random((40, 48)) * 255).astype(np.uint8)).save(path)
        records.append(
            ManifestRecord(
                image=path.name,
                split="train",
                source="unit",
                view="PA",
                report="Small right pleural effusion. No pneumothorax.",
            )
        )
    write_manifest(records, tmp_path / "m.jsonl")
    overrides = [
        f"run.out_dir={tmp_path / 'run'}",
        f"data.sources=[{{kind: manifest, path: '{tmp_path / 'm.jsonl'}'}}]",
        "data.batch_size=4",
        "model.build_books=false",
        SMALL_MODEL,
        "run.max_steps=1",
        "run.progress=false",
        *precision,
    ]
    argv = ["--config", str(TINY)]
    for item in overrides:
        argv += ["--override", item]
    assert main(argv) == 0
    payload = torch.load(tmp_path / "run" / "checkpoint_final.pt", weights_only=True)
    assert payload["step"] == 1 and payload["model_config"]["trunk"] == "resnet18"
    assert payload["train_config"]["data"]["batch_size"] == 4
    assert all(torch.isfinite(t).all() for t in payload["model"].values() if t.is_floating_point())


def test_unknown_config_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown"):
        load_config(TINY, ["optim.learning_rate=0.1"])
    with pytest.raises(ConfigError, match="amp"):
        load_config(TINY, ["run.amp=fp8"])
    assert load_config(TINY, ["optim.lr=3e-4"]).optim.lr == pytest.approx(3e-4)
    assert load_config(TINY, ["data.sources.1.max_records=3"]).data.sources[1].max_records == 3
    with pytest.raises(ConfigError, match="list index"):
        load_config(TINY, ["data.sources.7.max_records=3"])


def test_no_weight_decay_on_norms_biases_and_embeddings() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Embedding(3, 4))
    decay, no_decay = parameter_groups(model, 0.02)
    assert decay["weight_decay"] == 0.02 and no_decay["weight_decay"] == 0.0
    decayed = decay["params"]
    undecayed = no_decay["params"]
    assert isinstance(decayed, list) and isinstance(undecayed, list)
    assert [p.shape for p in decayed] == [torch.Size([4, 4])]
    assert len(undecayed) == 4  # linear bias, norm weight + bias, embedding table


class _TrunkAndHead(torch.nn.Module):
    """The two kinds of parameters a trunk rate tells apart: the trunk (by its name) and the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.res_features = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
        self.head = torch.nn.Linear(2, 3)


def _lr_by_parameter(optimizer: torch.optim.Optimizer) -> dict[int, float]:
    return {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}


def test_trunk_lr_scale_gives_the_trunk_its_own_rate_under_one_schedule() -> None:
    model = _TrunkAndHead()
    optimizer = build_optimizer(model, OptimSection(lr=1e-4, trunk_lr_scale=3.0))
    lrs = _lr_by_parameter(optimizer)
    assert len(lrs) == len(list(model.parameters()))  # every parameter exactly once
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(lrs)
    for name, parameter in model.named_parameters():
        expected = 3e-4 if name.startswith("res_features.") else 1e-4
        assert lrs[id(parameter)] == pytest.approx(expected), name
    decays = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decays[id(model.res_features[0].weight)] == decays[id(model.head.weight)] > 0
    assert decays[id(model.res_features[1].weight)] == decays[id(model.head.bias)] == 0.0

    schedule = ScheduleSection(epochs=1, warmup_steps=2, min_lr_ratio=0.1)
    scheduler = build_scheduler(optimizer, schedule, total_steps=10, steps_per_epoch=10)
    optimizer.step()
    scheduler.step()  # step 1 of a 2-step warm-up: both rates at 1.0 x their peak
    lrs = _lr_by_parameter(optimizer)
    assert lrs[id(model.res_features[0].weight)] == pytest.approx(3e-4)
    assert lrs[id(model.head.weight)] == pytest.approx(1e-4)


def test_trunk_lr_scale_of_one_keeps_the_two_released_groups() -> None:
    model = _TrunkAndHead()
    optimizer = build_optimizer(model, OptimSection(lr=2e-4))
    assert len(optimizer.param_groups) == 2
    assert {g["lr"] for g in optimizer.param_groups} == {2e-4}


def test_trunk_lr_scale_refuses_a_model_without_a_trunk_and_a_bad_scale() -> None:
    with pytest.raises(ValueError, match="needs a trunk"):
        build_optimizer(torch.nn.Linear(2, 2), OptimSection(trunk_lr_scale=3.0))
    with pytest.raises(ValueError, match="positive"):
        build_optimizer(_TrunkAndHead(), OptimSection(trunk_lr_scale=0.0))


def test_warmup_then_cosine() -> None:
    factors = [warmup_cosine_factor(step, 4, 14, 0.1) for step in range(15)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == pytest.approx(1.0)
    assert factors[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factors[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(factors[3:]))  # non-increasing after warm-up


@pytest.mark.parametrize("path", sorted(TINY.parent.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.data.sources, "a config without data"
    assert config.data.image_size % 16 == 0


def test_train_repeat_oversamples_training_records_only(tmp_path: Path) -> None:
    records = [ManifestRecord(image=f"{name}.png", split=split, source="unit", view="PA")
               for name, split in (("a", "train"), ("b", "train"), ("c", "val"))]
    write_manifest(records, tmp_path / "m.jsonl")
    spec = SourceSpec(kind="manifest", path=str(tmp_path / "m.jsonl"), train_repeat=3)
    train, val = load_records(DataSection(sources=[spec]))
    assert sorted(Path(r.image).name for r in train) == ["a.png"] * 3 + ["b.png"] * 3
    assert [Path(r.image).name for r in val] == ["c.png"]
    with pytest.raises(ValueError, match="train_repeat"):
        load_records(DataSection(sources=[SourceSpec(kind="manifest", path=spec.path, train_repeat=0)]))


def test_origin_repeat_oversamples_the_training_records_of_one_copy(tmp_path: Path) -> None:
    records = [ManifestRecord(image=f"{name}.png", split=split, source="unit", view="PA", origin=origin)
               for name, split, origin in (("a", "train", "one"), ("b", "train", "two"), ("c", "val", "two"))]
    write_manifest(records, tmp_path / "m.jsonl")
    path = str(tmp_path / "m.jsonl")
    spec = SourceSpec(kind="manifest", path=path, train_repeat=2, origin_repeat={"two": 5})
    train, val = load_records(DataSection(sources=[spec]))
    assert sorted(Path(r.image).name for r in train) == ["a.png"] * 2 + ["b.png"] * 5
    assert [Path(r.image).name for r in val] == ["c.png"]
    with pytest.raises(ValueError, match="does not have"):  # a misspelt copy must not pass silently
        load_records(DataSection(sources=[SourceSpec(kind="manifest", path=path, origin_repeat={"to": 5})]))
    with pytest.raises(ValueError, match="origin_repeat"):
        load_records(DataSection(sources=[SourceSpec(kind="manifest", path=path, origin_repeat={"two": 0})]))
