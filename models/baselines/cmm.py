"""Cross-modality localization network of ECCV18 (AVDLN, originally Keras): two small
embedding branches whose Euclidean distance says whether an audio segment and a visual
segment belong to the same audio-visual event; trained with the contrastive loss of
Hadsell et al. (2006)."""

from __future__ import annotations

from pathlib import Path

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F

KERAS_EPSILON = 1e-7  # K.epsilon(), the floor under the squared distance


class CMMNet(nn.Module):
    """visual 512 -> 128 -> LeakyReLU(0.3) -> 64; audio 128 -> 128 -> LeakyReLU(0.3) -> 64."""

    def __init__(self, visual_dim: int = 512, audio_dim: int = 128) -> None:
        super().__init__()
        self.visual = nn.Sequential(nn.Linear(visual_dim, 128), nn.LeakyReLU(0.3), nn.Linear(128, 64))
        self.audio = nn.Sequential(nn.Linear(audio_dim, 128), nn.LeakyReLU(0.3), nn.Linear(128, 64))
        for layer in (*self.visual, *self.audio):  # Keras Dense defaults
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """video [...,512], audio [...,128] (same leading shape) -> distance [...]."""
        diff = self.visual(video) - self.audio(audio)
        return torch.sqrt(torch.clamp((diff * diff).sum(-1), min=KERAS_EPSILON))


def contrastive_loss(distance: torch.Tensor, same: torch.Tensor, margin: float = 2.0) -> torch.Tensor:
    """mean(y d^2 + (1-y) max(margin - d, 0)^2); margin 2.0 is the training value."""
    same = same.to(distance.dtype)
    return (same * distance.square() + (1 - same) * F.relu(margin - distance).square()).mean()


# Keras layer names in the released `cmm_model_weights.h5`: dense_1/2 visual, dense_3/4 audio
KERAS_LAYERS = {"visual.0": "dense_1", "visual.2": "dense_2", "audio.0": "dense_3", "audio.2": "dense_4"}


def load_keras_weights(model: CMMNet, path: str | Path) -> CMMNet:
    """Loads a Keras `save_weights` HDF5 of the original CMM network (kernels are [in, out])."""
    with h5py.File(path, "r") as f:
        for ours, name in KERAS_LAYERS.items():
            if name not in f:
                raise KeyError(f"{path}: layer {name!r} missing (have {sorted(f.keys())})")
            group = f[name][name] if name in f[name] else f[name]
            kernel, bias = group["kernel:0"][()], group["bias:0"][()]
            layer = model.get_submodule(ours)
            if tuple(kernel.shape) != (layer.in_features, layer.out_features):
                raise ValueError(f"{path}: {name}/kernel:0 has shape {kernel.shape}, "
                                 f"expected {(layer.in_features, layer.out_features)}")
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(kernel.T.copy()))
                layer.bias.copy_(torch.from_numpy(bias.copy()))
    return model


def cmm(**kw) -> CMMNet:
    return CMMNet(**kw)
