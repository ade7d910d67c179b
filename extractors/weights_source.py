"""Where a visual extractor's weights come from, and the identity recorded with its outputs.

Three sources, named in the config / CLI as `--weights`:
  "pretrained"  the published weights, from the avel cache ($AVEL_HOME): torchvision's own
                checkpoint files (fetched by `avel weights fetch-torchvision NAME`) or a
                converted file (`avel weights convert-vgg19-keras`);
  "random"      seeded initialisation, recorded as the word "random" so nobody mistakes
                the features for research features;
  a file path   any state_dict file of the same architecture.
Nothing here downloads: a missing file is an error that names the command that gets it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from extractors.weights_cache import cache_dir, sha256_of


def torchvision_cache_dir() -> Path:
    return cache_dir() / "torchvision"


def torchvision_file(weights_enum: Any) -> Path:
    """Cache path of a torchvision weights entry (its URL's file name, as torch.hub names it)."""
    return torchvision_cache_dir() / Path(weights_enum.url).name


def build_seeded(builder: Callable[[], torch.nn.Module], seed: int) -> torch.nn.Module:
    """Build a network with its random init drawn from `seed`, leaving the global RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder()


def load_state(weights: str, *, default_file: Path, fetch_hint: str) -> tuple[dict[str, Any], str]:
    """State dict and weights id for `weights` = "pretrained" or a path to a state_dict file."""
    path = default_file if weights == "pretrained" else Path(weights).expanduser()
    if not path.is_file():
        where = "in the weights cache ($AVEL_HOME)" if weights == "pretrained" else "at the given path"
        raise FileNotFoundError(f"weights file {path} not found {where}; get it with `{fetch_hint}`")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state, sha256_of(path)
