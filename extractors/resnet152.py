"""ResNet-152 global-pooled 2048-d frame features at 8 fps for LLP / AVVP: [80, 2048].

The AVVP scripts take 80 of a clip's 8 fps frames (`round(linspace(0, n-1, 80))`), pass them
through ImageNet ResNet-152 with the classifier replaced by identity, and save all 80 rows
(HAN averages groups of 8 later). Cadene's `pretrainedmodels.resnet152` wraps torchvision's
own ImageNet checkpoint (`resnet152-b121ed2d.pth` = `ResNet152_Weights.IMAGENET1K_V1`) and
its transform is resize shorter side 256 (bilinear), centre crop 224, [0,1], ImageNet mean/std.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.models import ResNet152_Weights, resnet152

from extractors.frame_extractor import FrameExtractor
from extractors.frames import ImageRecipe
from extractors.weights_source import torchvision_file

IMAGENET = ImageRecipe(size=224, resize="shorter", resize_to=256, interpolation="bilinear")


class ResNet152Pooled(FrameExtractor):
    name = "resnet152"

    def __init__(self, *, frames: int = 80, min_frames: int = 10, image_size: int | None = None,
                 weights: str = "pretrained", seed: int = 0) -> None:
        self.frames = frames
        self._min = min_frames
        super().__init__(image=IMAGENET.at_size(image_size), weights=weights, seed=seed)

    def frame_count(self) -> int:
        return self.frames

    def min_frames(self) -> int:
        return self._min

    def build_network(self) -> torch.nn.Module:
        net = resnet152(weights=None)
        net.fc = torch.nn.Identity()
        return net

    def pretrained_file(self) -> Path:
        return torchvision_file(ResNet152_Weights.IMAGENET1K_V1)

    def fetch_hint(self) -> str:
        return "avel weights fetch-torchvision resnet152"

    def recipe(self) -> dict[str, Any]:
        return {**self.base_recipe(), "network": "resnet152 (ImageNet, torchvision IMAGENET1K_V1)",
                "layer": "avgpool (fc = identity)", "selection": "round(linspace(0, n-1, frames))"}

    def output_shape(self) -> tuple[int, ...]:
        return (self.frames, 2048)
