"""Tiny AVE-format feature directories for the baseline tests: random features with a
class-dependent shift so a few epochs of training have something to learn."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

N_CLASSES = 28  # AVE: 28 events + background (index 28)


def make_labels(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per video one class and a contiguous event run of 2..9 segments (like AVE's match split)."""
    labels = np.zeros((n, 10, N_CLASSES + 1), np.float32)
    closs = np.zeros((n, 10), np.float32)
    classes = rng.integers(0, 4, size=n)  # few classes so tiny runs can learn
    for i in range(n):
        length = int(rng.integers(2, 10))
        start = int(rng.integers(0, 10 - length + 1))
        labels[i, :, N_CLASSES] = 1
        labels[i, start:start + length, N_CLASSES] = 0
        labels[i, start:start + length, classes[i]] = 1
        closs[i, start:start + length] = 1
    return labels, closs, classes


def write_ave_dir(root: Path, n: int = 18, seed: int = 0, with_noisy: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    labels, closs, classes = make_labels(n, rng)
    audio = rng.normal(size=(n, 10, 128)).astype(np.float32)
    video = np.abs(rng.normal(size=(n, 10, 7, 7, 512))).astype(np.float32)
    event = closs.astype(bool)
    audio[event] += 2.0 * np.eye(128, dtype=np.float32)[classes][:, None, :].repeat(10, 1)[event]
    video[event] += np.eye(512, dtype=np.float32)[classes * 7][:, None, None, None, :].repeat(10, 1)[event]
    mil = np.zeros((n, N_CLASSES + 1), np.float32)
    mil[np.arange(n), classes] = 1
    root.mkdir(parents=True, exist_ok=True)

    def put(name: str, key: str, value: np.ndarray) -> None:
        with h5py.File(root / name, "w") as f:
            f[key] = value

    put("audio_feature.h5", "avadataset", audio)
    put("visual_feature.h5", "avadataset", video)
    put("labels.h5", "avadataset", labels)
    put("mil_labels.h5", "avadataset", mil)
    put("labels_closs.h5", "avadataset", closs)
    thirds = np.array_split(rng.permutation(n), 3)
    for split, idx in zip(("train", "val", "test"), thirds):
        put(f"{split}_order.h5", "order", np.sort(idx).astype(np.int64))
        put(f"{split}_order_match.h5", "order", np.sort(idx).astype(np.int64))
    if with_noisy:
        k = 3
        put("audio_feature_noisy.h5", "avadataset", rng.normal(size=(k, 10, 128)))
        put("visual_feature_noisy.h5", "avadataset", np.abs(rng.normal(size=(k, 10, 7, 7, 512))))
        noisy = np.zeros((k, N_CLASSES + 1), np.float32)
        noisy[:, N_CLASSES] = 1
        put("labels_noisy.h5", "avadataset", noisy)
    return root
