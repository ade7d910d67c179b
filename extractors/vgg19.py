"""VGG-19 pool5 maps for AVE-style visual features: [10, 7, 7, 512] per 10 s clip.

The AVE recipe (Tian et al., ECCV 2018): 16 frames per 1 s segment, each through VGG-19 up
to `block5_pool`, the 16 maps of a segment averaged. The original scripts used the Keras
ImageNet VGG-19, so the faithful default `keras-imagenet` pairs the converted Keras weights
with Keras' preprocessing: `load_img(target_size=(224, 224))` (nearest-neighbour, aspect
not kept), RGB→BGR, subtract the caffe BGR means, no scaling, no std. `torchvision-imagenet`
pairs torchvision's own VGG-19 weights with its transforms (256 resize, 224 crop, mean/std);
it will not reproduce the released AVE features. A recipe's weights bring their
preprocessing: a caller picks the recipe, never the normalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torchvision.models import VGG19_Weights, vgg19

from extractors.frame_extractor import FrameExtractor
from extractors.frames import ImageRecipe
from extractors.weights_cache import cache_dir
from extractors.weights_source import torchvision_file

KERAS_FILE = "vgg19_keras_imagenet.pt"

RECIPES: dict[str, ImageRecipe] = {
    "keras-imagenet": ImageRecipe(size=224, resize="exact", interpolation="nearest", scale=1.0,
                                  mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
                                  channel_order="BGR"),
    "torchvision-imagenet": ImageRecipe(size=224, resize="shorter", resize_to=256,
                                        interpolation="bilinear"),
}


def vgg19_features() -> torch.nn.Sequential:
    """torchvision's VGG-19 conv stack (`features`, ends with pool5); no classifier, whose
    102M parameters the recipe never uses."""
    return vgg19(weights=None).features


class VGG19Pool5(FrameExtractor):
    name = "vgg19"

    def __init__(self, *, recipe: Literal["keras-imagenet", "torchvision-imagenet"] = "keras-imagenet",
                 segments: int = 10, frames_per_segment: int = 16, image_size: int | None = None,
                 weights: str = "pretrained", seed: int = 0) -> None:
        if recipe not in RECIPES:
            raise ValueError(f"vgg19 recipe {recipe!r} unknown; choose one of {', '.join(RECIPES)}")
        self.recipe_name = recipe
        self.segments, self.frames_per_segment = segments, frames_per_segment
        # image_size: smaller inputs for tests and demos (recorded in the recipe)
        super().__init__(image=RECIPES[recipe].at_size(image_size), weights=weights, seed=seed)

    def frame_count(self) -> int:
        return self.segments * self.frames_per_segment

    def build_network(self) -> torch.nn.Module:
        return vgg19_features()

    def pretrained_file(self) -> Path:
        if self.recipe_name == "keras-imagenet":
            return cache_dir() / KERAS_FILE
        return torchvision_file(VGG19_Weights.IMAGENET1K_V1)

    def fetch_hint(self) -> str:
        if self.recipe_name == "keras-imagenet":
            return "avel weights convert-vgg19-keras KERAS_WEIGHTS.h5"
        return "avel weights fetch-torchvision vgg19"

    def load_weights(self, net: torch.nn.Module, state: dict[str, Any]) -> None:
        # torchvision's full VGG-19 file names the conv stack "features.N.*"; ours has "N.*"
        state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
        net.load_state_dict(state, strict=True)

    def map_side(self) -> int:
        return self.image.size // 32

    def recipe(self) -> dict[str, Any]:
        return {**self.base_recipe(), "recipe": self.recipe_name, "layer": "pool5",
                "segments": self.segments, "frames_per_segment": self.frames_per_segment,
                "reduce": "mean over each segment's frames", "layout": "segment, h, w, channel"}

    def output_shape(self) -> tuple[int, ...]:
        s = self.map_side()
        return (self.segments, s, s, 512)

    def fold(self, outputs: torch.Tensor) -> torch.Tensor:
        """[frames, 512, h, w] → mean over each segment's frames → [segments, h, w, 512]."""
        s = self.map_side()
        maps = outputs.float().reshape(self.segments, self.frames_per_segment, 512, s, s).mean(1)
        return maps.permute(0, 2, 3, 1).contiguous()
