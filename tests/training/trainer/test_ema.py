"""Weight averages: the arithmetic, resume, and the averaged model files a pretraining run writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.support.training.resume import straight_and_resumed
from tests.training.tasks.test_train_joint import joint_config
from training.model import load_checkpoint
from training.tasks.finetune_seg import SEGMENTATION_CHECKPOINT
from training.tasks.train import MEDSLIP_CHECKPOINT, build_trainer, save_final_models
from training.trainer.ema import WeightAverage, ema_folder
from training.trainer.loop import Trainer


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.norm = nn.BatchNorm1d(2)


def small_model() -> Small:
    return Small()


def test_the_average_is_the_running_mean_until_the_decay_takes_over() -> None:
    model = small_model()
    average = WeightAverage(model, decay=0.75)
    start = model.linear.weight.detach().clone()
    with torch.no_grad():
        tracked = model.norm.num_batches_tracked
        assert tracked is not None
        tracked.fill_(7)
        seen = []
        for _ in range(3):  # weights start + 1, + 2, + 3 after three steps
            model.linear.weight.add_(1.0)
            average.update(model)
            seen.append(average.state["linear.weight"].clone())
    assert torch.allclose(seen[0], start + 1.0)  # decay 0: the first step's weights
    assert torch.allclose(seen[1], start + 1.5)  # decay 1/2: the mean of both steps
    assert torch.allclose(seen[2], start + 2.0)  # decay 2/3: the mean of all three
    assert int(average.state["norm.num_batches_tracked"]) == 7  # integer buffers are copied, not averaged
    assert average.current_decay() == pytest.approx(0.75)  # from the fourth update on: the decay itself
    with torch.no_grad():
        model.linear.weight.add_(1.0)
    average.update(model)
    assert torch.allclose(average.state["linear.weight"], 0.75 * seen[2] + 0.25 * (start + 4.0))
    assert torch.allclose(model.linear.weight, start + 4.0)  # the model keeps its own weights


def test_a_decay_outside_zero_one_and_a_mismatched_checkpoint_are_refused() -> None:
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(small_model(), decay=1.0)
    saved = WeightAverage(small_model(), decay=0.99).state_dict()
    with pytest.raises(ValueError, match=r"decay 0\.99"):
        WeightAverage(small_model(), decay=0.9).load_state_dict(saved)
    with pytest.raises(ValueError, match="lacks"):
        WeightAverage(nn.Sequential(small_model(), nn.Linear(2, 1)), decay=0.99).load_state_dict(saved)


EMA = ("run.ema_decays=[0.5, 0.9]",)  # differ from the second update on


@pytest.mark.shared_data
def test_a_resumed_run_continues_its_averages_exactly(shared_data: Path, tmp_path: Path) -> None:
    def trainer(out: Path, max_steps: int) -> Trainer:
        return build_trainer(joint_config(out, "data.batch_size=4", "model.build_books=false",
                                          "schedule.total_steps=4", f"run.max_steps={max_steps}", *EMA))

    straight, _, resumed = straight_and_resumed(trainer, tmp_path, 3)
    resumed.fit()
    for mine, theirs in zip(resumed.averages, straight.averages, strict=True):
        assert mine.updates == theirs.updates == 3
        for name, tensor in theirs.state.items():
            assert torch.allclose(mine.state[name], tensor, atol=1e-6), name
    without = build_trainer(joint_config(tmp_path / "d", "data.batch_size=4", "model.build_books=false",
                                         "schedule.total_steps=4"))
    with pytest.raises(ValueError, match="weight averages"):  # a run resumed without its averages
        without.resume(tmp_path / "b" / "checkpoint_last.pt")


@pytest.mark.shared_data
def test_each_average_is_written_as_model_files_beside_the_raw_ones(
    shared_data: Path, tmp_path: Path
) -> None:
    trainer = build_trainer(joint_config(tmp_path, "data.batch_size=4", "model.build_books=false",
                                         "schedule.total_steps=3", *EMA))
    trainer.val_set = None
    trainer.fit()
    raw = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
    save_final_models(trainer)
    assert all(torch.equal(tensor, raw[name]) for name, tensor in trainer.model.state_dict().items())
    own, _ = load_checkpoint(tmp_path / MEDSLIP_CHECKPOINT)
    for average in trainer.averages:
        folder = tmp_path / ema_folder(average.decay)
        model, extra = load_checkpoint(folder / MEDSLIP_CHECKPOINT)
        expected = {k[len("medslip."):]: v for k, v in average.state.items() if k.startswith("medslip.")}
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, expected[name]), name
        assert extra["step"] == 3
        _, seg_extra = load_checkpoint(folder / SEGMENTATION_CHECKPOINT)
        head = {k[len("head."):]: v for k, v in average.state.items() if k.startswith("head.")}
        assert set(seg_extra["segmentation_head"]) == set(head)
        assert all(torch.equal(seg_extra["segmentation_head"][k], v) for k, v in head.items())
    written = [load_checkpoint(tmp_path / ema_folder(d) / MEDSLIP_CHECKPOINT)[0].state_dict()
               for d in (0.5, 0.9)]
    raw_state = own.state_dict()

    def differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
        return any(t.is_floating_point() and not torch.equal(t, b[n]) for n, t in a.items())

    assert differs(raw_state, written[0]) and differs(raw_state, written[1])  # neither is the raw weights
    assert differs(written[0], written[1])  # and the two decays differ


def test_a_fine_tuning_command_refuses_averages_it_would_not_write(tmp_path: Path) -> None:
    from training.tasks import finetune_seg

    config = Path(__file__).resolve().parents[3] / "training" / "configs" / "finetune_seg_jsrt.yaml"
    argv = ["--config", str(config), "--init", str(tmp_path / "none.pt")]
    argv += ["--override", "run.ema_decays=[0.99]"]
    with pytest.raises(SystemExit, match="writes no weight averages"):
        finetune_seg.main(argv)
