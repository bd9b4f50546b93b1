"""Fine-tuning commands on real images: classification and segmentation losses fall; outputs load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from training.config_io import config_from_dict
from training.model import SEGMENTATION_STRUCTURES, create_model, load_checkpoint, save_checkpoint
from training.model.segmentation import SegmentationHead
from training.tasks import finetune_cls, finetune_seg
from training.trainer.config import TrainConfig, load_config

CONFIGS = Path(__file__).resolve().parents[3] / "training" / "configs"
SMALL: dict[str, Any] = {"n_layers": 1, "ffn_dim": 128, "d_model": 64, "dropout": 0.0}


@pytest.fixture
def init_checkpoint(tmp_path: Path) -> Path:
    """A small random 'pretrained' model (64 px) with random books, saved in the package format."""
    torch.manual_seed(0)
    model = create_model("medslip_resnet18", image_size=64, **SMALL)
    model.set_query_books(torch.randn(75, model.config.text_dim), torch.randn(51, model.config.text_dim))
    path = tmp_path / "init.pt"
    save_checkpoint(path, model)
    return path


def _config(name: str, out: Path, *overrides: str) -> TrainConfig:
    torch.set_num_threads(1)
    config = load_config(
        CONFIGS / name,
        [
            f"run.out_dir={out}",
            "run.progress=false",
            "run.device=cpu",
            "run.threads=1",
            "data.num_workers=0",
            "data.image_size=64",
            "data.augment=false",
            "schedule.warmup_steps=1",
            "run.val_every=1000",
            *overrides,
        ],
    )
    for source in config.data.sources:
        source.max_records = 4
    return config


def _decreases(history: list[dict[str, float]], term: str) -> bool:
    return float(np.mean([h[term] for h in history[-3:]])) < float(np.mean([h[term] for h in history[:3]]))


@pytest.mark.shared_data
def test_classification_finetune_reduces_loss(
    shared_data: Path, tmp_path: Path, init_checkpoint: Path
) -> None:
    config = _config(
        "finetune_cls_kermany.yaml",
        tmp_path / "cls",
        "data.batch_size=4",
        "optim.lr=1e-3",
        "schedule.epochs=10",
    )
    model, _ = load_checkpoint(init_checkpoint)
    trainer = finetune_cls.build_trainer(config, model)
    assert len(trainer.train_set) == 4
    trainer.val_set = None
    history = trainer.fit()
    assert len(history) == 10
    assert _decreases(history, "classification"), [round(h["classification"], 3) for h in history]
    reloaded, extra = load_checkpoint(tmp_path / "cls" / "checkpoint_final.pt", strict=True)
    assert reloaded.config.image_size == 64 and extra["step"] == 10


@pytest.mark.shared_data
def test_segmentation_finetune_reduces_every_term_and_saves_head(
    shared_data: Path, tmp_path: Path, init_checkpoint: Path
) -> None:
    out = tmp_path / "seg"
    code = finetune_seg.main(
        [
            "--config",
            str(CONFIGS / "finetune_seg_jsrt.yaml"),
            "--init",
            str(init_checkpoint),
            "--override",
            f"run.out_dir={out}",
            "--override",
            "run.progress=false",
            "--override",
            "run.threads=1",
            "--override",
            "data.num_workers=0",
            "--override",
            "data.image_size=64",
            "--override",
            "data.augment=false",
            "--override",
            "data.batch_size=4",
            "--override",
            "optim.lr=1e-3",
            "--override",
            "schedule.total_steps=10",
            "--override",
            "schedule.warmup_steps=1",
            "--override",
            "run.val_every=1000",
            "--override",
            "run.log_every=1",
            "--override",
            "data.sources=[{kind: jsrt, path: '{shared}/jsrt-scr', max_records: 4},"
            " {kind: covid, path: '{shared}/covid-chestxray', max_records: 4}]",
        ]
    )
    assert code == 0
    import json

    train_lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    history = [line for line in train_lines if line["split"] == "train"]
    assert len(history) == 10
    for term in ("bce", "dice", "lungs_bce", "lungs_dice", "total"):
        assert _decreases(history, term), (term, [round(h[term], 3) for h in history])
    model, extra = load_checkpoint(out / finetune_seg.SEGMENTATION_CHECKPOINT)
    assert extra["segmentation"]["structures"] == list(SEGMENTATION_STRUCTURES)
    head = finetune_seg.SegmentationModel(model.res_features)
    head.head.load_state_dict(extra["segmentation_head"])
    logits = head(torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, 5, 64, 64)


def test_lungs_union_loss_ignores_per_side_channels_without_masks() -> None:
    """A covid-style sample (only the union mask) must not train the per-side channels."""
    task = finetune_seg.SegmentationTask(finetune_seg.SegmentationTaskConfig())
    logits = torch.zeros(1, 5, 8, 8, requires_grad=True)

    class Fixed(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return logits

    lungs = torch.zeros(1, 8, 8)
    lungs[:, 2:6, 1:7] = 1.0
    batch = {
        "image": torch.zeros(1, 3, 8, 8),
        "masks": torch.ones(1, 5, 8, 8),
        "mask_valid": torch.zeros(1, 5),
        "lungs": lungs,
        "lungs_valid": torch.ones(1),
    }
    terms = task.losses(Fixed(), batch, training=True)
    assert terms["bce"].item() == 0.0 and terms["dice"].item() == 0.0
    terms["total"].backward()
    assert logits.grad is not None
    assert torch.count_nonzero(logits.grad[:, 2:]) == 0  # heart and clavicles untouched
    assert torch.count_nonzero(logits.grad[:, :2]) > 0  # the two lung channels learn the union


def test_structure_balanced_loss_weighs_a_rare_structure_like_a_common_one() -> None:
    """Four images annotate the lungs (loss 0), one the clavicle (loss 1): the clavicle is half the loss."""
    values = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])  # (B=4, K=2): clavicle, lung
    valid = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    assert finetune_seg._structure_balanced_mean(values, valid).item() == pytest.approx(0.5)
    assert finetune_seg._masked_mean(values, valid).item() == pytest.approx(0.2)  # outvoted 4 to 1
    lungs_only = torch.tensor([[0.0, 1.0]] * 4)  # a structure no image annotates is left out, not zeroed
    assert finetune_seg._structure_balanced_mean(values, lungs_only).item() == pytest.approx(0.0)
    values[:, 1] = 0.25
    assert finetune_seg._structure_balanced_mean(values, lungs_only).item() == pytest.approx(0.25)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("head_init", "decoder_kept", "classifier_kept"),
    [("continue", True, True), ("reset_classifier", True, False), ("fresh", False, False)],
)
def test_head_init_decides_what_is_kept_of_the_init_checkpoints_head(
    shared_data: Path, tmp_path: Path, head_init: str, decoder_kept: bool, classifier_kept: bool
) -> None:
    torch.manual_seed(0)
    model = create_model("medslip_resnet18", image_size=64, **SMALL)
    widths = (16, 8, 8, 8)
    joint = SegmentationHead(model.res_features.stage_channels, decoder_channels=widths)
    with torch.no_grad():
        for parameter in joint.parameters():
            parameter.fill_(0.125)  # values no initialiser draws
    extra = {
        "segmentation_head": joint.state_dict(),
        "segmentation": {"structures": list(SEGMENTATION_STRUCTURES), "decoder_channels": list(widths)},
    }
    config = _config("finetune_seg_jsrt.yaml", tmp_path, "task.decoder_channels=[16, 8, 8, 8]",
                     f"task.head_init={head_init}")
    task = config_from_dict(finetune_seg.SegmentationTaskConfig, config.task)
    kept = finetune_seg._matching_head(extra, task)
    _, segmentation, _ = finetune_seg.build_trainer(config, model, head=kept)
    head = segmentation.head
    assert torch.equal(head.up_to_8.refine[0].weight, joint.up_to_8.refine[0].weight) is decoder_kept
    assert torch.equal(head.classifier.weight, joint.classifier.weight) is classifier_kept


def test_an_unknown_head_init_is_refused_by_name() -> None:
    refusal = r"head_init: 'warm' is not one of \['continue', 'reset_classifier', 'fresh'\]"
    with pytest.raises(ValueError, match=refusal):
        config_from_dict(finetune_seg.SegmentationTaskConfig, {"head_init": "warm"})


@pytest.mark.parametrize(
    ("size", "frozen", "allowed"),
    [(96, True, True), (64, True, True), (32, True, False), (96, False, False)],
)
def test_only_a_frozen_trunk_takes_a_larger_segmentation_input(
    shared_data: Path, tmp_path: Path, init_checkpoint: Path, *, size: int, frozen: bool, allowed: bool
) -> None:
    """The head is resolution-agnostic over a frozen trunk; a trained trunk or a smaller input would
    change what the MeDSLIP heads read, so those stay refused."""
    model, _ = load_checkpoint(init_checkpoint)  # trained at 64 px
    config = _config("finetune_seg_jsrt.yaml", tmp_path, "task.decoder_channels=[16, 8, 8, 8]",
                     f"data.image_size={size}", f"task.freeze_trunk={str(frozen).lower()}")
    if not allowed:
        with pytest.raises(ValueError, match=f"model image_size 64 != data.image_size {size}"):
            finetune_seg.build_trainer(config, model)
        return
    trainer, segmentation, task = finetune_seg.build_trainer(config, model)
    assert trainer.train_set[0]["image"].shape[-1] == size
    path = tmp_path / "seg.pt"
    finetune_seg.save_segmentation_checkpoint(path, model, segmentation, task, config.data.image_size)
    _, extra = load_checkpoint(path)
    assert extra["segmentation"]["image_size"] == size


def _head_extra(model: torch.nn.Module, fill: float, widths: tuple[int, int, int, int]) -> dict[str, Any]:
    head = SegmentationHead(model.res_features.stage_channels, decoder_channels=widths)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.fill_(fill)  # values no initialiser draws
    return {"segmentation_head": head.state_dict(),
            "segmentation": {"structures": list(SEGMENTATION_STRUCTURES), "decoder_channels": list(widths)}}


@pytest.mark.shared_data
def test_keep_prior_head_freezes_the_init_head_beside_a_redrawn_one_and_saves_both(
    shared_data: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = create_model("medslip_resnet18", image_size=64, **SMALL)
    extra = _head_extra(model, 0.125, (16, 8, 8, 8))
    config = _config("finetune_seg_jsrt.yaml", tmp_path, "task.decoder_channels=[16, 8, 8, 8]",
                     "task.head_init=reset_classifier", "task.keep_prior_head=true")
    task = config_from_dict(finetune_seg.SegmentationTaskConfig, config.task)
    prior = finetune_seg._prior_of(extra, task)
    trainer, segmentation, task = finetune_seg.build_trainer(
        config, model, head=finetune_seg._matching_head(extra, task), prior=prior)
    assert segmentation.prior_head is not None
    assert all(not p.requires_grad for p in segmentation.prior_head.parameters())
    drawn = extra["segmentation_head"]["classifier.weight"]
    assert torch.equal(segmentation.prior_head.classifier.weight, drawn)
    assert not torch.equal(segmentation.head.classifier.weight, segmentation.prior_head.classifier.weight)
    trained = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not trained & {id(p) for p in segmentation.prior_head.parameters()}

    path = tmp_path / "seg.pt"
    finetune_seg.save_segmentation_checkpoint(path, model, segmentation, task, 64)
    _, saved = load_checkpoint(path)
    assert saved["segmentation"]["prior_decoder_channels"] == [16, 8, 8, 8]
    assert torch.equal(saved["prior_head"]["classifier.weight"], drawn)
    again = config_from_dict(finetune_seg.SegmentationTaskConfig, {"keep_prior_head": True})
    kept, widths = finetune_seg._prior_of(saved, again)  # a later stage keeps the FIRST prior
    assert torch.equal(kept["classifier.weight"], drawn)
    assert widths == [16, 8, 8, 8]


def test_keep_prior_head_needs_an_init_head_of_the_same_structures() -> None:
    task = config_from_dict(finetune_seg.SegmentationTaskConfig, {"keep_prior_head": True})
    with pytest.raises(ValueError, match="needs an init checkpoint with a segmentation head"):
        finetune_seg._prior_of({}, task)
    model = create_model("medslip_resnet18", image_size=64, **SMALL)
    other = _head_extra(model, 0.5, (16, 8, 8, 8))
    other["segmentation"]["structures"] = ["pneumothorax"]
    with pytest.raises(ValueError, match="needs an init checkpoint with a segmentation head"):
        finetune_seg._prior_of(other, task)
