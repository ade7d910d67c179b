"""R(2+1)D-18 (Kinetics-400) clip features for LLP / AVVP: [10, 512] per 10 s clip.

The AVVP recipe: the same 80 frames as the 2-D features, in 10 consecutive clips of 8
(one clip per second at 8 fps), each frame resized to 112x112 (bilinear, aspect not kept,
no crop), [0,1], Kinetics mean/std; torchvision `r2plus1d_18` without its fc → 512-d.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.models.video import R2Plus1D_18_Weights, r2plus1d_18

from extractors.frame_extractor import FrameExtractor
from extractors.frames import ImageRecipe, normalise
from extractors.weights_source import torchvision_file

KINETICS = ImageRecipe(size=112, resize="exact", interpolation="bilinear",
                       mean=(0.43216, 0.394666, 0.37645), std=(0.22803, 0.22145, 0.216989))


class R2Plus1D18(FrameExtractor):
    name = "r2plus1d_18"
    memory_format = torch.channels_last_3d

    def __init__(self, *, clips: int = 10, clip_len: int = 8, min_frames: int = 10,
                 image_size: int | None = None, weights: str = "pretrained", seed: int = 0) -> None:
        self.clips, self.clip_len, self._min = clips, clip_len, min_frames
        super().__init__(image=KINETICS.at_size(image_size), weights=weights, seed=seed)

    def frame_count(self) -> int:
        return self.clips * self.clip_len

    def min_frames(self) -> int:
        return self._min

    def build_network(self) -> torch.nn.Module:
        net = r2plus1d_18(weights=None)
        net.fc = torch.nn.Identity()
        return net

    def pretrained_file(self) -> Path:
        return torchvision_file(R2Plus1D_18_Weights.KINETICS400_V1)

    def fetch_hint(self) -> str:
        return "avel weights fetch-torchvision r2plus1d_18"

    def items_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """[80, 3, H, W] → [10 clips, 3, 8, H, W]."""
        n, c, h, w = pixels.shape
        return pixels.reshape(self.clips, self.clip_len, c, h, w).permute(0, 2, 1, 3, 4)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        x = normalise(items, self.image).contiguous(memory_format=self.memory_format)
        return self.net(x)

    def recipe(self) -> dict[str, Any]:
        return {**self.base_recipe(), "network": "r2plus1d_18 (Kinetics-400, torchvision KINETICS400_V1)",
                "layer": "avgpool (fc = identity)", "clips": self.clips, "clip_len": self.clip_len,
                "selection": "round(linspace(0, n-1, clips*clip_len)), consecutive groups"}

    def output_shape(self) -> tuple[int, ...]:
        return (self.clips, 512)
