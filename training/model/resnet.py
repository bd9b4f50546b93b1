"""ResNet image trunk written here (torchvision/timm cannot load beside this torch).

The layout copies torchvision's so that `nn.Sequential(conv1, bn1, relu, maxpool, layer1, layer2, layer3)`
produces the released checkpoint keys one-to-one: `res_features.0.weight` (conv1), `res_features.1.*`
(bn1), `res_features.4.0.conv1.weight` (layer1, block 0), ...  The last stage (layer4) and the pooling/fc
head are absent on purpose: MeDSLIP reads the 16x-strided layer3 grid as patch tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from training.model.config import TRUNK_STAGE_CHANNELS


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """Projection shortcut when a block changes width or resolution (keys `downsample.0/1`)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(_conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = _conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = _downsample(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, "ResNet v1.5" as torchvision), 1x1 expand (ResNet-50)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = _conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


#: Block type and blocks per stage (layer1..layer3) of each supported trunk.
_TRUNK_LAYOUT: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6)),
    "resnet50": (Bottleneck, (3, 4, 6)),
}


class ResNetTrunk(nn.Sequential):
    """ResNet stem + layer1..layer3 as one `nn.Sequential` (indices 0..6, matching the release).

    Calling it returns the layer3 grid `(B, C, S/16, S/16)`; `forward_stages` also returns the earlier
    stages so a segmentation decoder can use them as skip connections.
    """

    def __init__(self, name: str) -> None:
        if name not in _TRUNK_LAYOUT:
            raise ValueError(f"unknown trunk {name!r}; choose one of {sorted(_TRUNK_LAYOUT)}")
        block, depths = _TRUNK_LAYOUT[name]
        stem_channels = 64
        layers: list[nn.Module] = []
        in_channels = stem_channels
        for stage_index, (width, depth) in enumerate(zip((64, 128, 256), depths, strict=True)):
            stride = 1 if stage_index == 0 else 2
            blocks: list[nn.Module] = []
            for block_index in range(depth):
                blocks.append(block(in_channels, width, stride if block_index == 0 else 1))
                in_channels = width * block.expansion
            layers.append(nn.Sequential(*blocks))
        super().__init__(
            nn.Conv2d(3, stem_channels, kernel_size=7, stride=2, padding=3, bias=False),  # 0: conv1
            nn.BatchNorm2d(stem_channels),  # 1: bn1
            nn.ReLU(inplace=True),  # 2: relu
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # 3: maxpool
            *layers,  # 4, 5, 6: layer1, layer2, layer3
        )
        self.trunk_name = name
        self.stage_channels: tuple[int, int, int, int] = TRUNK_STAGE_CHANNELS[name]
        self._init_weights()

    def _init_weights(self) -> None:
        """He (fan-out) init for convolutions and unit BatchNorm, as torchvision's random ResNet."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def out_channels(self) -> int:
        """Channels of the layer3 output (the patch-token width)."""
        return self.stage_channels[-1]

    def forward_stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of stem (stride 2), layer1 (4), layer2 (8) and layer3 (16), in that order."""
        stem = self[2](self[1](self[0](images)))  # (B, 64, S/2, S/2)
        layer1 = self[4](self[3](stem))  # (B, C1, S/4, S/4)
        layer2 = self[5](layer1)  # (B, C2, S/8, S/8)
        layer3 = self[6](layer2)  # (B, C3, S/16, S/16)
        return [stem, layer1, layer2, layer3]
