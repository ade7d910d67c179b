"""VGGish PCA + 8-bit quantisation, as the AudioSet release ships its embeddings.

The release whitens with a PCA (`vggish_pca_params.npz`: `pca_eigen_vectors` [128,128],
`pca_means` [128]), clips to [-2, 2], maps to 0..255 and casts to uint8 — a cast that
TRUNCATES. video_features' torch port rounds instead, so its values can be one higher;
`rounding="round"` reproduces that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

Rounding = Literal["truncate", "round"]
QUANTIZE_MIN = -2.0
QUANTIZE_MAX = 2.0


def load_pca_params(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(eigen_vectors [128,128], means [128]) from the release's npz; errors name the file and key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGGish PCA params not found: {path} (get them with "
                                "`avel weights fetch vggish`)")
    with np.load(path, allow_pickle=False) as params:
        for key in ("pca_eigen_vectors", "pca_means"):
            if key not in params:
                raise KeyError(f"{path}: key {key!r} missing (has {sorted(params.files)})")
        vectors = np.asarray(params["pca_eigen_vectors"], dtype=np.float64)
        means = np.asarray(params["pca_means"], dtype=np.float64).reshape(-1)
    if vectors.shape != (128, 128) or means.shape != (128,):
        raise ValueError(f"{path}: expected pca_eigen_vectors [128,128] and pca_means [128], "
                         f"got {vectors.shape} and {means.shape}")
    return vectors, means


def postprocess(embeddings: np.ndarray, pca_params_path: str | Path,
                rounding: Rounding = "truncate") -> np.ndarray:
    """Raw [N,128] embeddings → uint8 [N,128]: PCA, clip to [-2,2], scale to 0..255, cast."""
    if rounding not in ("truncate", "round"):
        raise ValueError(f"rounding must be 'truncate' or 'round', got {rounding!r}")
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[1] != 128:
        raise ValueError(f"expected embeddings [N, 128], got {embeddings.shape}")
    vectors, means = load_pca_params(pca_params_path)
    projected = (embeddings - means) @ vectors.T
    clipped = np.clip(projected, QUANTIZE_MIN, QUANTIZE_MAX)
    scaled = (clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))
    if rounding == "round":
        scaled = np.round(scaled)
    return scaled.astype(np.uint8)
