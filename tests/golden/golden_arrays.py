"""Arrays that both the golden generator (run against the authors' code) and the tests
(run against ours) rebuild from a name alone, so a golden file holds only the outputs.

A full PSP/CPSP net has ~1.6 M parameters (6 MB in float32): too big to ship per golden.
Instead every weight and input is drawn from numpy's legacy `RandomState`, seeded by the
CRC-32 of its name; numpy keeps that stream fixed across versions, and each golden file also
stores a checksum per array, so a drift would show up as a checksum failure, not as a
silent mismatch.
"""

from __future__ import annotations

import zlib

import numpy as np


def named_uniform(name: str, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    """float64 uniform[low, high) array of `shape`, determined by `name` alone."""
    rng = np.random.RandomState(zlib.crc32(name.encode("utf-8")))
    return rng.uniform(low, high, size=shape)


def weight_range(name: str, shape: tuple[int, ...]) -> tuple[float, float]:
    """Xavier-uniform bounds for matrices, +-0.1 for biases, 1 +- 0.1 for LayerNorm gains:
    the scale of the authors' own initialisation, so pruning and LSTM gates work in their
    usual range rather than saturating."""
    if name.endswith("layer_norm.weight"):
        return 0.9, 1.1
    if len(shape) >= 2:
        bound = float(np.sqrt(6.0 / (shape[0] + shape[1])))
        return -bound, bound
    return -0.1, 0.1


def named_weights(prefix: str, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """One array per state_dict entry, each from `prefix + name`."""
    return {name: named_uniform(prefix + name, shape, *weight_range(name, shape))
            for name, shape in shapes.items()}


def checksum(array: np.ndarray) -> np.ndarray:
    """(sum, sum of squares, first element) in float64: enough to tell a different stream."""
    flat = np.asarray(array, dtype=np.float64).ravel()
    return np.array([flat.sum(), (flat * flat).sum(), flat[0] if flat.size else 0.0])
