"""Frame-side CPU work shared by the image and video extractors: which frames a recipe
takes, how a JPEG becomes the network's pixels, and how those pixels are normalised.

Preprocessing is described as data (`ImageRecipe`) so it is recorded with every output and
travels with the weights it belongs to. Decode and resize run in the runner's worker
processes with PIL (the library the original scripts used, so resampling matches); mean/std
normalisation runs on the device in `normalise`, so only uint8 crosses the bus.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from extractors.base import ClipRejected

_PIL_FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                "bicubic": Image.Resampling.BICUBIC}
_TV_MODES = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
             "bicubic": InterpolationMode.BICUBIC}


@dataclass(frozen=True)
class ImageRecipe:
    """How one frame becomes a network input.

    resize "exact": to size x size ignoring aspect (Keras `load_img(target_size=...)`,
    torchvision `Resize((s, s))`); "shorter": shorter side to `resize_to`, then centre crop
    `size` (torchvision `Resize(256)` + `CenterCrop(224)`).
    Pixel values: x = (rgb_or_bgr * scale - mean) / std, channels in `channel_order`.
    """

    size: int
    resize: Literal["exact", "shorter"] = "exact"
    resize_to: int | None = None
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: Literal["RGB", "BGR"] = "RGB"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def at_size(self, size: int | None) -> ImageRecipe:
        """The same recipe for a smaller (or larger) input, e.g. for tests and demos: the
        pre-crop resize keeps its ratio to the crop. `None` keeps this recipe."""
        if size is None:
            return self
        resize_to = None if self.resize_to is None else round(size * self.resize_to / self.size)
        return replace(self, size=size, resize_to=resize_to)


def require_frames(frames: list[bytes], minimum: int) -> None:
    if len(frames) < minimum:
        raise ClipRejected("too_few_frames", f"{len(frames)} frames, the recipe needs at least {minimum}")


def decode(jpeg: bytes, recipe: ImageRecipe) -> np.ndarray:
    """One JPEG → uint8 [size, size, 3] RGB after the recipe's resize (and crop)."""
    try:
        image: Image.Image = Image.open(io.BytesIO(jpeg))
        image = image.convert("RGB")
    except Exception as exc:  # PIL raises several types for broken data
        raise ClipRejected("bad_frame", f"JPEG does not decode: {exc}") from None
    return resize(image, recipe)


def resize(image: Image.Image, recipe: ImageRecipe) -> np.ndarray:
    """An RGB PIL image → uint8 [size, size, 3] after the recipe's resize (and crop)."""
    if recipe.resize == "exact":
        image = image.resize((recipe.size, recipe.size), _PIL_FILTERS[recipe.interpolation])
    else:
        image = TF.resize(image, recipe.resize_to or recipe.size,
                          interpolation=_TV_MODES[recipe.interpolation])
        image = TF.center_crop(image, recipe.size)
    return np.asarray(image, dtype=np.uint8)


def decode_many(jpegs: list[bytes], recipe: ImageRecipe) -> torch.Tensor:
    """JPEGs → uint8 [N, 3, size, size] whose memory is NHWC (channels_last), as decoded."""
    pixels = np.stack([decode(j, recipe) for j in jpegs])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2)


def normalise(items: torch.Tensor, recipe: ImageRecipe, channel_dim: int = 1) -> torch.Tensor:
    """uint8 pixels (channels on `channel_dim`, RGB) → float32 network input, on their device."""
    x = items.float()
    if recipe.channel_order == "BGR":
        x = x.flip(channel_dim)
    shape = [1] * x.dim()
    shape[channel_dim] = 3
    mean = torch.tensor(recipe.mean, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(recipe.std, dtype=x.dtype, device=x.device).view(shape)
    if recipe.scale != 1.0:
        x = x * recipe.scale
    return (x - mean) / std
