"""Extractor names → classes, so the CLI, the config and the runner agree on one list.

Entries are import paths, resolved on first use: `avel --help` must not import torchvision
or TensorFlow, and a family whose optional dependency is missing fails only when asked for.
To add a family, add one line here and one file under `extractors/`. (The same table shape
as `models.registry.LazyTable`; `extractors` may not import `models`.)
"""

from __future__ import annotations

import pkgutil
from typing import Any

from extractors.base import Extractor

#: extractor name → "module:ClassName"
CATALOG: dict[str, str] = {
    "vgg19": "extractors.vgg19:VGG19Pool5",
    "resnet152": "extractors.resnet152:ResNet152Pooled",
    "r2plus1d_18": "extractors.r2plus1d_18:R2Plus1D18",
    "resnet_layer3": "extractors.resnet_layer3:ResNetLayer3",
    "vggish": "extractors.vggish:VGGishExtractor",
}


def names() -> list[str]:
    return sorted(CATALOG)


def extractor_class(name: str) -> type[Extractor]:
    """The class registered as `name`; KeyError listing the known names otherwise."""
    if name not in CATALOG:
        raise KeyError(f"unknown extractor {name!r}; known: {', '.join(names())}")
    return pkgutil.resolve_name(CATALOG[name])


def create(name: str, **options: Any) -> Extractor:
    """Build extractor `name` with recipe options (weights=..., seed=..., recipe overrides)."""
    return extractor_class(name)(**options)
