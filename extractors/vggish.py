"""VGGish in PyTorch, its weights, and the `vggish` extractor the pipeline runs.

The network mirrors the AudioSet release's TF-slim graph (conv 64-128-256×2-512×2, four
2×2 pools, fc 4096-4096-128, flatten in TF's NHWC order) with parameter names of the
torchvggish port (`features.N`, `embeddings.N`), so both our converted checkpoint and that
port's released state_dict load as they are. Whether fc2 is followed by a ReLU is an
option: the 2017 release, torchvggish/video_features and the released AVE features have it;
the current upstream graph does not.

Public API: `VGGish`, `vggish(...)`, `load_weights`, `waveform_to_examples`, `postprocess`,
`VGGishExtractor`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from extractors.base import ClipInput, ClipRejected, Extractor
from extractors.vggish_frontend import (
    EXAMPLE_FRAMES,
    EXAMPLE_SAMPLES,
    RECIPES,
    AudioError,
    LogMel,
    Recipe,
    example_chunks,
    example_start_seconds,
    int_to_float,
    waveform_to_examples,
)
from extractors.vggish_postprocess import Rounding, load_pca_params, postprocess
from extractors.weights_cache import cached_file, sha256_of

__all__ = ["VGGish", "vggish", "load_weights", "waveform_to_examples", "postprocess",
           "VGGishExtractor", "DEFAULT_WEIGHTS", "PCA_PARAMS"]

log = logging.getLogger(__name__)

#: cache file names `avel weights fetch vggish` provides
DEFAULT_WEIGHTS = "vggish.pt"
PCA_PARAMS = "vggish_pca_params.npz"
EMBEDDING_SIZE = 128


class VGGish(nn.Module):
    """[B, 96, 64] (or [B, 1, 96, 64]) log-mel examples → [B, 128] embeddings."""

    def __init__(self, fc2_relu: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for block in ((64,), (128,), (256, 256), (512, 512)):
            for width in block:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
                                 nn.Linear(4096, 4096), nn.ReLU(inplace=True),
                                 nn.Linear(4096, EMBEDDING_SIZE)]
        if fc2_relu:
            head.append(nn.ReLU(inplace=True))
        self.embeddings = nn.Sequential(*head)
        self.fc2_relu = fc2_relu

    def reset_parameters(self) -> None:
        """He-normal weights, zero biases: a random net whose embeddings keep a usable scale
        (torch's default init shrinks activations ~10x per layer, giving near-constant output)."""
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        if examples.dim() == 3:
            examples = examples.unsqueeze(1)
        maps = self.features(examples)  # [B, 512, 6, 4]
        flat = maps.permute(0, 2, 3, 1).reshape(maps.shape[0], -1)  # TF flattens NHWC
        return self.embeddings(flat)


def load_weights(model: VGGish, path: str | Path) -> str:
    """Load our converted checkpoint or torchvggish's released state_dict; returns its sha256."""
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: not a VGGish state_dict (missing {sorted(missing)[:4]}, "
                         f"unexpected {sorted(unexpected)[:4]})")
    return sha256_of(path)


#: names that mean "the released weights from the cache"
PRETRAINED = ("pretrained", "default")


def vggish(weights: str | Path | None = "pretrained", *, fc2_relu: bool = True,
           seed: int = 0) -> tuple[VGGish, str]:
    """Build VGGish → (model in eval mode, weights identity).

    `weights`: "pretrained" (the cache's `vggish.pt`), a file path, or None / "random" for a
    network initialised from `seed` (identity "random", recorded with every output).
    """
    if weights in (None, "random"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = VGGish(fc2_relu=fc2_relu)
            model.reset_parameters()
        return model.eval(), "random"
    model = VGGish(fc2_relu=fc2_relu)
    path = cached_file(DEFAULT_WEIGHTS) if weights in PRETRAINED else Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"VGGish weights file not found: {path}")
    return model.eval(), load_weights(model, path)


Backend = Literal["torch", "tf"]


class VGGishExtractor(Extractor):
    """VGGish features, [seconds, 128] per clip, following a named recipe.

    Items are the 15,600 16-kHz samples behind each example ([seconds, 15600] per clip), so
    the log-mel runs batched on the device inside `forward`. Seconds without an example (an
    `ave` slice missing at the end) travel as NaN rows and come out as zero rows; a
    `whole-clip` waveform with fewer examples than seconds repeats its last example, as
    CPSP's loader pads its features.
    """

    name = "vggish"
    input_kind = "waveform"

    def __init__(self, recipe: Recipe = "ave", weights: str | Path | None = "pretrained", *,
                 fc2_relu: bool = True, pca: str | Path | None = None,
                 rounding: Rounding = "truncate", backend: Backend = "torch",
                 seconds: int = 10, seed: int = 0) -> None:
        if recipe not in RECIPES:
            raise ValueError(f"unknown VGGish recipe {recipe!r}; choose one of {RECIPES}")
        if backend not in ("torch", "tf"):
            raise ValueError(f"unknown VGGish backend {backend!r}; choose torch or tf")
        self.recipe_name = recipe
        self.seconds = seconds
        self.backend = backend
        self.fc2_relu = fc2_relu
        self.rounding = rounding
        self.log_mel = LogMel().float()
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.net: VGGish | None
        self.tf_model: Any
        if backend == "torch":
            self.net, self.weights_id = vggish(weights, fc2_relu=fc2_relu, seed=seed)
            self.tf_model = None
        else:
            from extractors.vggish_tf import VGGishTF

            self.net = None
            self.tf_model = VGGishTF(None if weights in (None, "random") else
                                     (cached_file("vggish_model.ckpt") if weights in PRETRAINED
                                      else weights), fc2_relu=fc2_relu, seed=seed)
            self.weights_id = self.tf_model.weights_id
        self.pca_path = None
        self.pca_id = None
        if pca is not None:
            self.pca_path = cached_file(PCA_PARAMS) if pca in PRETRAINED else Path(pca)
            vectors, means = load_pca_params(self.pca_path)
            self.pca_vectors = torch.from_numpy(vectors)
            self.pca_means = torch.from_numpy(means)
            self.pca_id = sha256_of(self.pca_path)

    def recipe(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe_name,
            "backend": self.backend,
            "fc2_relu": self.fc2_relu,
            "seconds": self.seconds,
            "example_start_s": example_start_seconds(self.recipe_name, self.seconds),
            "postprocess": "pca-uint8" if self.pca_path else "none",
            "rounding": self.rounding if self.pca_path else "none",
            "pca_sha256": self.pca_id or "none",
            "frontend": "16k resampy kaiser_best; 25ms periodic hann/10ms hop; fft512 |.|; "
                        "64 htk mel 125-7500; log(x+0.01); 96x64",
        }

    def output_shape(self) -> tuple[int, ...]:
        return (self.seconds, EMBEDDING_SIZE)

    def modules(self) -> list[nn.Module]:
        return [self.net] if self.net is not None else []

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> VGGishExtractor:
        super().to(device, dtype)
        self.device = torch.device(device)
        self.dtype = dtype
        # the log-mel stays in float32 (or float64) whatever the network runs in
        self.log_mel.to(device=device, dtype=torch.float64 if dtype == torch.float64 else torch.float32)
        return self

    def preprocess(self, clip: ClipInput) -> torch.Tensor:
        if clip.audio is None or np.asarray(clip.audio).size == 0:
            raise ClipRejected("no_audio", "the clip has no audio samples")
        try:
            samples = int_to_float(clip.audio)
            chunks, present = example_chunks(samples, clip.sample_rate, self.recipe_name,
                                             self.seconds)
        except AudioError as exc:
            raise ClipRejected(exc.reason, str(exc)) from exc
        if not present.any():
            raise ClipRejected("audio_too_short",
                               f"{np.asarray(clip.audio).shape[0]} samples at {clip.sample_rate} Hz "
                               "give no complete VGGish example")
        if self.recipe_name == "whole-clip":
            last = int(np.flatnonzero(present)[-1])
            chunks[last + 1:] = chunks[last]
        else:
            chunks[~present] = np.nan
        return torch.from_numpy(chunks.astype(np.float32))

    def examples(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Items → ([B, 96, 64] log-mel examples on the device, [B] missing mask)."""
        items = items.to(self.device, dtype=self.log_mel.window.dtype, non_blocking=True)
        missing = torch.isnan(items[:, 0])
        wave = torch.nan_to_num(items, nan=0.0)
        with torch.autocast(self.device.type, enabled=False):  # log of small energies: keep fp32
            return self.log_mel(wave)[:, :EXAMPLE_FRAMES, :], missing

    @torch.inference_mode()
    def forward(self, items: torch.Tensor) -> torch.Tensor:
        if items.shape[-1] != EXAMPLE_SAMPLES:
            raise ValueError(f"VGGish items must be [B, {EXAMPLE_SAMPLES}], got {tuple(items.shape)}")
        examples, missing = self.examples(items)
        if self.net is not None:
            raw = self.net(examples.to(self.dtype))
        else:
            raw = torch.from_numpy(self.tf_model.embed(examples.float().cpu().numpy()))
            raw = raw.to(self.device)
        out = raw.float()
        if self.pca_path is not None:
            out = self._quantize(out)
        out[missing] = 0.0
        return out

    def _quantize(self, raw: torch.Tensor) -> torch.Tensor:
        """PCA + clip + 0..255 in float64 on the device; values are exact integers in float32."""
        vectors = self.pca_vectors.to(raw.device)
        means = self.pca_means.to(raw.device)
        with torch.autocast(raw.device.type, enabled=False):
            projected = (raw.double() - means) @ vectors.T
        scaled = (projected.clamp(-2.0, 2.0) + 2.0) * (255.0 / 4.0)
        scaled = scaled.round() if self.rounding == "round" else scaled.trunc()
        return scaled.float()


