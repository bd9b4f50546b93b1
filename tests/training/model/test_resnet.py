"""The hand-written ResNet trunk: torchvision layout, stage shapes, initialisation."""

from __future__ import annotations

import pytest
import torch

from training.model.resnet import ResNetTrunk


@pytest.mark.parametrize(
    ("name", "channels"),
    [("resnet18", (64, 64, 128, 256)), ("resnet34", (64, 64, 128, 256)), ("resnet50", (64, 256, 512, 1024))],
)
def test_stage_shapes_follow_strides(name: str, channels: tuple[int, ...]) -> None:
    trunk = ResNetTrunk(name).eval()
    with torch.no_grad():
        stages = trunk.forward_stages(torch.randn(1, 3, 64, 64))
        final = trunk(torch.randn(1, 3, 64, 64))
    assert [tuple(s.shape) for s in stages] == [
        (1, channels[0], 32, 32),
        (1, channels[1], 16, 16),
        (1, channels[2], 8, 8),
        (1, channels[3], 4, 4),
    ]
    assert tuple(final.shape) == (1, channels[3], 4, 4)
    assert trunk.out_channels == channels[3]


def test_forward_stages_last_equals_sequential_forward() -> None:
    trunk = ResNetTrunk("resnet18").eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(trunk.forward_stages(images)[-1], trunk(images))


def test_torchvision_key_layout() -> None:
    keys = set(ResNetTrunk("resnet50").state_dict())
    expected = {"0.weight", "1.running_var", "4.0.conv3.weight", "4.0.downsample.0.weight", "6.5.bn3.bias"}
    assert expected <= keys
    assert not any(k.startswith("7.") for k in keys)  # no layer4
    basic = set(ResNetTrunk("resnet18").state_dict())
    assert "4.0.conv2.weight" in basic and "4.0.conv3.weight" not in basic
    assert "4.0.downsample.0.weight" not in basic  # layer1 of resnet18 keeps width and stride
    assert "5.0.downsample.0.weight" in basic


def test_random_init_is_kaiming_and_unit_batchnorm() -> None:
    trunk = ResNetTrunk("resnet18")
    conv, norm = trunk[0], trunk[1]
    assert isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d)
    expected_std = (2.0 / (64 * 49)) ** 0.5  # weight (64, 3, 7, 7): fan_out = 64 * 49
    assert abs(conv.weight.std().item() - expected_std) / expected_std < 0.1
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


def test_unknown_trunk_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown trunk"):
        ResNetTrunk("resnet101")


def test_resnet34_is_resnet18_deeper_at_every_stage() -> None:
    deep = set(ResNetTrunk("resnet34").state_dict())
    assert {"4.2.conv2.weight", "5.3.conv2.weight", "6.5.conv2.weight"} <= deep  # 3, 4, 6 blocks
    assert "6.6.conv1.weight" not in deep and "4.0.conv3.weight" not in deep  # basic blocks, no more
    shallow = set(ResNetTrunk("resnet18").state_dict())
    assert shallow < deep
