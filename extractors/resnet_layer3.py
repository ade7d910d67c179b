"""ResNet-152 layer-3 maps for CPSP's VGGSound-AVEL code path: [10, 1024, 7, 7] per clip.

CPSP's `vis_fea_type='resnet'` reads 1024-channel 7x7 maps per 1 s segment and does not
say which network made them. Our recipe (a documented choice, not a copy of a known one):
ImageNet ResNet-152 up to layer3 (1024 channels, stride 16 → 14x14 at 224), 2x2 average
pooling to 7x7, and the same segment averaging as the VGG-19 recipe (16 frames a second).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.models import ResNet152_Weights, resnet152

from extractors.frame_extractor import FrameExtractor
from extractors.resnet152 import IMAGENET
from extractors.weights_source import torchvision_file


class Layer3Trunk(torch.nn.Module):
    """ResNet stem + layers 1–3 + average pool to a fixed map size; keeps torchvision's
    parameter names so its checkpoint loads directly."""

    conv1: torch.nn.Module
    bn1: torch.nn.Module
    relu: torch.nn.Module
    maxpool: torch.nn.Module
    layer1: torch.nn.Module
    layer2: torch.nn.Module
    layer3: torch.nn.Module

    def __init__(self, map_side: int) -> None:
        super().__init__()
        full = resnet152(weights=None)
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"):
            setattr(self, name, getattr(full, name))
        self.pool = torch.nn.AdaptiveAvgPool2d(map_side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.pool(self.layer3(self.layer2(self.layer1(x))))


class ResNetLayer3(FrameExtractor):
    name = "resnet_layer3"

    def __init__(self, *, segments: int = 10, frames_per_segment: int = 16, map_side: int = 7,
                 image_size: int | None = None, weights: str = "pretrained", seed: int = 0) -> None:
        self.segments, self.frames_per_segment, self.map_side = segments, frames_per_segment, map_side
        super().__init__(image=IMAGENET.at_size(image_size), weights=weights, seed=seed)

    def frame_count(self) -> int:
        return self.segments * self.frames_per_segment

    def build_network(self) -> torch.nn.Module:
        return Layer3Trunk(self.map_side)

    def pretrained_file(self) -> Path:
        return torchvision_file(ResNet152_Weights.IMAGENET1K_V1)

    def fetch_hint(self) -> str:
        return "avel weights fetch-torchvision resnet152"

    def recipe(self) -> dict[str, Any]:
        return {**self.base_recipe(), "network": "resnet152 (ImageNet, torchvision IMAGENET1K_V1)",
                "layer": "layer3, adaptive avg pool", "map_side": self.map_side,
                "segments": self.segments, "frames_per_segment": self.frames_per_segment,
                "reduce": "mean over each segment's frames", "layout": "segment, channel, h, w"}

    def output_shape(self) -> tuple[int, ...]:
        return (self.segments, 1024, self.map_side, self.map_side)

    def fold(self, outputs: torch.Tensor) -> torch.Tensor:
        s = self.map_side
        maps = outputs.float().reshape(self.segments, self.frames_per_segment, 1024, s, s).mean(1)
        return maps.contiguous()
