"""Joint pretraining: a segmentation head on the MeDSLIP trunk learns masks in the same batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.training.resume import straight_and_resumed
from training.export.bundle import load_models, training_summary
from training.export.graph import ImageModelGraph
from training.model import load_checkpoint
from training.tasks.finetune_seg import SEGMENTATION_CHECKPOINT
from training.tasks.train import MEDSLIP_CHECKPOINT, build_trainer, save_final_models
from training.trainer.config import TrainConfig, load_config

TINY = Path(__file__).resolve().parents[3] / "training" / "configs" / "tiny.yaml"
JOINT = (
    "model.overrides={n_layers: 1, ffn_dim: 128, d_model: 64, dropout: 0.0}",
    "task={segmentation_weight: 1.0, segmentation: {decoder_channels: [16, 8, 8, 8]}}",
    "data.sources=[{kind: jsrt, path: '{shared}/jsrt-scr', max_records: 8}, "
    "{kind: kermany, path: '{shared}/kermany-pediatric', max_records: 4}]",
    "data.augment=false",
    "run.val_every=1000",
)


def joint_config(out: Path, *overrides: str) -> TrainConfig:
    torch.set_num_threads(1)
    return load_config(TINY, [f"run.out_dir={out}", "run.progress=false", *JOINT, *overrides])


@pytest.mark.shared_data
def test_segmentation_terms_fall_and_both_checkpoints_share_one_trunk(
    shared_data: Path, tmp_path: Path
) -> None:
    config = joint_config(tmp_path, "optim.lr=1e-3", "schedule.epochs=10", "schedule.warmup_steps=2")
    trainer = build_trainer(config)
    assert len(trainer.train_set) == 12  # 8 JSRT films with masks + 4 Kermany films without
    trainer.val_set = None
    history = trainer.fit()
    for term in ("segmentation", "seg_dice", "existence_pathology", "total"):
        first = np.mean([step[term] for step in history[:3]])
        last = np.mean([step[term] for step in history[-3:]])
        assert last < first, f"{term} did not decrease: {first:.4f} -> {last:.4f}"
    save_final_models(trainer)
    facts = training_summary(load_checkpoint(tmp_path / MEDSLIP_CHECKPOINT)[1])  # what a card reports
    assert facts["step"] == trainer.state.step and facts["epoch"] == 10
    assert facts["schedule"]["epochs"] == 10 and facts["optim"]["lr"] == pytest.approx(1e-3)
    model, segmentation = load_models(tmp_path / MEDSLIP_CHECKPOINT, tmp_path / SEGMENTATION_CHECKPOINT)
    assert segmentation is not None and segmentation.trunk is model.res_features
    graph = ImageModelGraph(model, segmentation)
    assert graph.shared_trunk
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        shared = graph(image, model.pathology_book, model.anatomy_book)
        separate = model(image), segmentation(image)
    assert torch.allclose(shared[4], separate[1], atol=1e-5)  # same masks as running the trunk twice
    assert torch.allclose(shared[0], separate[0].pathology_logits.softmax(-1)[..., 1], atol=1e-5)


@pytest.mark.shared_data
def test_joint_resume_reproduces_the_next_step_exactly(shared_data: Path, tmp_path: Path) -> None:
    def config(out: Path, max_steps: int) -> TrainConfig:
        return joint_config(out, "data.batch_size=4", "model.build_books=false", "schedule.total_steps=6",
                            f"run.max_steps={max_steps}")

    _, expected, resumed = straight_and_resumed(lambda out, n: build_trainer(config(out, n)), tmp_path, 4)
    assert resumed.fit() == [expected]


def test_segmentation_fine_tuning_continues_a_joint_head_of_the_same_widths() -> None:
    from training.tasks.finetune_seg import SegmentationTaskConfig, _matching_head

    extra = {"segmentation_head": {"w": torch.zeros(1)}, "segmentation": {"decoder_channels": [16, 8, 8, 8]}}
    assert _matching_head(extra, SegmentationTaskConfig(decoder_channels=(16, 8, 8, 8))) is not None
    assert _matching_head(extra, SegmentationTaskConfig()) is None  # other widths: a fresh head
    assert _matching_head({}, SegmentationTaskConfig(decoder_channels=(16, 8, 8, 8))) is None
