"""Keras ImageNet VGG-19 weights (.h5) → a PyTorch state_dict for `extractors.vgg19`.

The AVE features were made with the Keras VGG-19, whose weights were converted from the
original Caffe model and differ from torchvision's retrained ones; to regenerate them we
run the Keras weights in torch. Keras stores conv kernels as [kh, kw, in, out] (HWIO) and,
like torch, computes cross-correlation with "same" 3x3 padding = torch padding 1, so a
kernel only needs its axes moved to torch's [out, in, kh, kw].

Reads every layout Keras has written: the published `vgg19_weights_tf_dim_ordering_tf_
kernels_notop.h5` (legacy: `<layer>/<layer>/kernel:0`), whole-model files (same under
`model_weights/`) and Keras 3 `.weights.h5`, under the layer names (`layers/<layer>/vars/0|1`)
or, as Keras 3.15 writes a functional model, under class names in creation order
(`layers/conv2d`, `layers/conv2d_1`, … `layers/conv2d_15`). Needs only h5py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np
import torch

from extractors.weights_cache import write_into_cache

#: Keras layer name → index of the same conv in torchvision's `vgg19().features`
KERAS_TO_TORCH: dict[str, int] = {
    "block1_conv1": 0, "block1_conv2": 2,
    "block2_conv1": 5, "block2_conv2": 7,
    "block3_conv1": 10, "block3_conv2": 12, "block3_conv3": 14, "block3_conv4": 16,
    "block4_conv1": 19, "block4_conv2": 21, "block4_conv3": 23, "block4_conv4": 25,
    "block5_conv1": 28, "block5_conv2": 30, "block5_conv3": 32, "block5_conv4": 34,
}

#: where tf.keras caches the published file after `VGG19(weights="imagenet", include_top=False)`
KERAS_NOTOP_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


def default_keras_file() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / KERAS_NOTOP_NAME


def read_keras_convs(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer name: (kernel HWIO, bias)} for the 16 VGG-19 convs, whatever the file layout."""
    found: dict[str, dict[str, np.ndarray]] = {}

    def visit(name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset):
            return
        layer = next((p for p in name.split("/") if p in KERAS_TO_TORCH), None)
        if layer is None:
            return
        role = "kernel" if obj.ndim == 4 else "bias" if obj.ndim == 1 else None
        if role:
            found.setdefault(layer, {})[role] = obj[()]

    with h5py.File(path, "r") as fh:
        fh.visititems(visit)
        if not found:
            found = _convs_by_class_name(fh)
    missing = [n for n in KERAS_TO_TORCH if set(found.get(n, {})) != {"kernel", "bias"}]
    if missing:
        raise KeyError(f"{path}: no kernel/bias for Keras VGG-19 layers {', '.join(missing)}")
    return {n: (found[n]["kernel"], found[n]["bias"]) for n in KERAS_TO_TORCH}


_CLASS_NAMED_CONV = re.compile(r"^conv2d(?:_(\d+))?$")


def _convs_by_class_name(fh: h5py.File) -> dict[str, dict[str, np.ndarray]]:
    """Keras 3's layout for a functional model: `layers/conv2d_<n>/vars/{0,1}`, numbered in
    creation order, which for VGG-19 is block order (the chained channel counts are checked
    in `keras_to_state_dict`); exactly 16 such convs or nothing."""
    layers = fh.get("layers")
    if not isinstance(layers, h5py.Group):
        return {}
    numbered = []
    for name in layers:
        match = _CLASS_NAMED_CONV.match(name)
        group = layers[name].get("vars")
        if match and isinstance(group, h5py.Group) and {"0", "1"} <= set(group):
            numbered.append((int(match.group(1) or 0), group))
    if len(numbered) != len(KERAS_TO_TORCH):
        return {}
    in_order = sorted(KERAS_TO_TORCH, key=KERAS_TO_TORCH.__getitem__)
    return {layer: {"kernel": group["0"][()], "bias": group["1"][()]}
            for layer, (_, group) in zip(in_order, sorted(numbered, key=lambda t: t[0]))}


def keras_to_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """State dict for torchvision's `vgg19().features` (keys "0.weight", "0.bias", …)."""
    state: dict[str, torch.Tensor] = {}
    channels = 3  # RGB in; each conv takes what the one before it gave
    convs = read_keras_convs(path)
    for layer in sorted(convs, key=KERAS_TO_TORCH.__getitem__):
        kernel, bias = convs[layer]
        index = KERAS_TO_TORCH[layer]
        if kernel.ndim != 4 or kernel.shape[:3] != (3, 3, channels) or kernel.shape[3] != bias.shape[0]:
            raise ValueError(f"{path}: {layer} kernel {kernel.shape} / bias {bias.shape} is not "
                             f"the VGG-19 conv that takes {channels} channels")
        channels = kernel.shape[3]
        state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(
            kernel.transpose(3, 2, 0, 1), dtype=np.float32))
        state[f"{index}.bias"] = torch.from_numpy(np.asarray(bias, dtype=np.float32))
    return state


def convert(keras_file: str | Path, out: str | Path) -> dict[str, torch.Tensor]:
    """Convert and save atomically, as the weights cache writes any file."""
    state = keras_to_state_dict(keras_file)
    write_into_cache(Path(out), lambda temp: torch.save(state, temp))
    return state
