"""The one interface every extractor implements, so one runner drives them all.

An extractor turns one clip's decoded media into *items* on the CPU (`preprocess`, run in
worker processes), runs a batched `forward` over items of many clips on the device, and
folds one clip's item outputs into its feature array (`assemble`). The runner never
knows which network it drives; the extractor never knows about shards, ledgers or files.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch

InputKind = Literal["waveform", "frames", "clip"]


@dataclass
class ClipInput:
    """Decoded media of one clip, as the cut stage stores it (no pipeline types here)."""

    audio: np.ndarray | None = None  # int16 [samples] or [samples, channels]
    sample_rate: int = 0
    frames: list[bytes] = field(default_factory=list)  # JPEG bytes
    frame_times: np.ndarray | None = None  # seconds from the clip start


class ClipRejected(ValueError):
    """The clip cannot give this extractor's input (too few frames, no audio…); `reason`
    is a short ledger key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Extractor(ABC):
    name: ClassVar[str]
    input_kind: ClassVar[InputKind]

    #: weights identity recorded with every output: sha256 of the weights file, or "random"
    weights_id: str = "random"

    @abstractmethod
    def recipe(self) -> dict[str, Any]:
        """Every parameter that decides the output (recorded in the store's attrs)."""

    @abstractmethod
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one clip's feature array."""

    @abstractmethod
    def preprocess(self, clip: ClipInput) -> torch.Tensor:
        """CPU work for one clip → its items stacked on dim 0: float32, or uint8 pixels that
        `forward` normalises on the device (4x less to copy; the visual extractors do this)."""

    @abstractmethod
    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Batched device work on items from any number of clips → one output per item."""

    def fold(self, outputs: torch.Tensor) -> torch.Tensor:
        """One clip's item outputs → its feature tensor, on their device (default: reshape).
        The runner keeps folded clips on the device until a store flush, so the device never
        waits for the host between batches."""
        return outputs.reshape(self.output_shape())

    def assemble(self, outputs: torch.Tensor) -> np.ndarray:
        """One clip's item outputs → its feature array on the host."""
        return self.fold(outputs).float().cpu().numpy()

    # -- device placement -----------------------------------------------------
    def modules(self) -> list[torch.nn.Module]:
        """The networks `to()` must move; extractors with weights override this."""
        return []

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> Extractor:
        for module in self.modules():
            module.to(device=device, dtype=dtype).eval()
        return self
