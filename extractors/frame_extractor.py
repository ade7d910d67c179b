"""What the frame-based extractors (VGG-19, ResNet-152, R(2+1)D-18, ResNet layer 3) share:
picking a clip's frames, building the network with its weights, and the device-side step.

A subclass states its recipe as class data (frames it takes, `ImageRecipe`, weights entry)
and writes `build_network` and, if the output needs folding, `fold`.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from extractors.base import ClipInput, ClipRejected, Extractor
from extractors.frame_selection import select_indices
from extractors.frames import (
    ImageRecipe,
    decode_many,
    normalise,
    require_frames,
    resize_on_device,
)
from extractors.jpeg_header import jpeg_size
from extractors.weights_source import build_seeded, load_state

#: the largest frame (width x height, as its JPEG header declares it) a frame extractor will
#: decode: `cut.max_pixels`'s default (4096x2160), which the extract stage sets from the
#: config. Frames avel cut are far smaller (the recipes scale to 224-480 pixels a side).
MAX_FRAME_PIXELS = 4096 * 2160


class FrameExtractor(Extractor):
    input_kind = "frames"
    #: memory format the network runs in (channels_last for 2-D, channels_last_3d for video)
    memory_format: ClassVar[torch.memory_format] = torch.channels_last
    #: frames declaring more pixels than this reject the clip before any decode
    max_pixels: int = MAX_FRAME_PIXELS

    def __init__(self, *, image: ImageRecipe, weights: str = "pretrained", seed: int = 0) -> None:
        self.image = image  # per-frame preprocessing of the active recipe
        self.weights = weights
        self.seed = seed
        if weights == "random":
            self.net = build_seeded(self.build_network, seed)
            self.weights_id = "random"
        else:
            net = self.build_network()
            state, self.weights_id = load_state(weights, default_file=self.pretrained_file(),
                                                fetch_hint=self.fetch_hint())
            self.load_weights(net, state)
            self.net = net
        self.net.eval()
        self.net.requires_grad_(False)

    # -- what a subclass says -------------------------------------------------
    @abstractmethod
    def frame_count(self) -> int:
        """How many frames of a clip the recipe uses."""

    def min_frames(self) -> int:
        """Fewer frames than this and the clip is rejected (recorded, not a crash)."""
        return self.frame_count()

    @abstractmethod
    def build_network(self) -> torch.nn.Module:
        """The network with random init, cut at the layer the recipe reads."""

    @abstractmethod
    def pretrained_file(self) -> Path:
        """Path of the pretrained weights file in the cache."""

    @abstractmethod
    def fetch_hint(self) -> str:
        """The command that puts `pretrained_file` in place."""

    def load_weights(self, net: torch.nn.Module, state: dict[str, Any]) -> None:
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing:
            raise ValueError(f"{self.name}: weights lack {len(missing)} tensors, e.g. {missing[:3]}")
        del unexpected  # heads the recipe cuts off (fc, classifier) are expected extras

    def base_recipe(self) -> dict[str, Any]:
        return {"extractor": self.name, "weights": self.weights if self.weights in ("pretrained", "random")
                else "file", "seed": self.seed if self.weights == "random" else None,
                "frames": self.frame_count(), "min_frames": self.min_frames(),
                "image": self.image.as_dict()}

    # -- the interface --------------------------------------------------------
    def select(self, n_frames: int) -> np.ndarray:
        """Frames used: all of them when the count matches, else evenly spaced ones."""
        return select_indices(n_frames, self.frame_count())

    def frame_indices(self, clip: ClipInput) -> np.ndarray:
        """Indices of the clip's frames this recipe uses (ClipRejected when too few, or when
        one of them declares more than `max_pixels` pixels: a decompression bomb is rejected
        from its header, on either decode path)."""
        require_frames(clip.frames, self.min_frames())
        chosen = self.select(len(clip.frames))
        for i in chosen:
            size = jpeg_size(clip.frames[int(i)])
            if size is not None and size[0] * size[1] > self.max_pixels:
                raise ClipRejected("huge_frame", f"frame {int(i)} declares {size[0]}x{size[1]} "
                                   f"pixels, over the {self.max_pixels} of cut.max_pixels; "
                                   "not decoded")
        return chosen

    def preprocess(self, clip: ClipInput) -> torch.Tensor:
        chosen = [clip.frames[i] for i in self.frame_indices(clip)]
        return self.items_from_pixels(decode_many(chosen, self.image))

    def items_on_device(self, images: list[torch.Tensor]) -> torch.Tensor:
        """The device-decode twin of `preprocess`: the decoded uint8 [3, H, W] images of
        `frame_indices` (on the device) → items, resized there."""
        return self.items_from_pixels(resize_on_device(images, self.image))

    def items_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [frames, 3, H, W] → the items `forward` takes (default: one per frame)."""
        return pixels

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        x = normalise(items, self.image).contiguous(memory_format=self.memory_format)
        return self.net(x)

    def modules(self) -> list[torch.nn.Module]:
        return [self.net]

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> FrameExtractor:
        # torch's stubs omit Module.to's memory_format keyword, which the runtime accepts
        self.net.to(device=device, dtype=dtype,  # type: ignore[call-overload]
                    memory_format=self.memory_format).eval()
        return self
