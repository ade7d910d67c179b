"""`--device auto|cpu|cuda[:n]` → a torch.device: one rule for extraction and training."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """`auto` is the first GPU when torch sees one, else the CPU; asking for CUDA on a machine
    without it is a ValueError now rather than a CUDA error at the first tensor moved."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} asked for, but torch sees no CUDA device")
    return torch.device(device)
