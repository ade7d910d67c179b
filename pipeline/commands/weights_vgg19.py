"""`avel weights convert-vgg19-keras` and `avel weights fetch-torchvision`: the visual
extractors' weights (`pipeline.commands.weights` adds them to the `avel weights` group)."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from pipeline.core.errors import InputError

TORCHVISION = {"vgg19": ("torchvision.models", "VGG19_Weights", "IMAGENET1K_V1"),
               "resnet152": ("torchvision.models", "ResNet152_Weights", "IMAGENET1K_V1"),
               "resnet_layer3": ("torchvision.models", "ResNet152_Weights", "IMAGENET1K_V1"),
               "r2plus1d_18": ("torchvision.models.video", "R2Plus1D_18_Weights", "KINETICS400_V1")}


@click.command("convert-vgg19-keras")
@click.argument("keras_file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Output .pt (default: the cache file the vgg19 keras-imagenet recipe loads).")
def convert_vgg19_keras(keras_file: Path | None, out: Path | None) -> None:
    """Convert the Keras ImageNet VGG-19 weights KERAS_FILE (.h5; default: tf.keras' cached
    vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5) for the faithful AVE recipe."""
    from extractors.vgg19 import KERAS_FILE
    from extractors.vgg19_keras_convert import convert, default_keras_file
    from extractors.weights_cache import cache_dir, sha256_of
    source = keras_file or default_keras_file()
    if not source.is_file():
        raise InputError("Keras VGG-19 weights not found; get them with `python -c \"import tf_keras; "
                         "tf_keras.applications.VGG19(include_top=False)\"` (caches the .h5) and rerun",
                         file=source)
    target = out or cache_dir() / KERAS_FILE
    try:
        state = convert(source, target)
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(str(exc), file=source) from None
    click.echo(f"{target}\t{len(state)} tensors\tsha256 {sha256_of(target)}")


@click.command("fetch-torchvision")
@click.argument("name", type=click.Choice(sorted(TORCHVISION)))
def fetch_torchvision(name: str) -> None:
    """Download torchvision's published weights for NAME into the cache (hash-checked)."""
    from extractors.weights_source import torchvision_cache_dir, torchvision_file
    module, enum, entry = TORCHVISION[name]
    weights = getattr(getattr(importlib.import_module(module), enum), entry)
    weights.get_state_dict(progress=True, check_hash=True, model_dir=str(torchvision_cache_dir()))
    click.echo(str(torchvision_file(weights)))
