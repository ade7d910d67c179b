"""Which of a clip's decoded frames the LLP recipes keep, in a module light enough (numpy
only) for the cut stage to share it with the extractors."""

from __future__ import annotations

import numpy as np


def select_indices(n_frames: int, count: int) -> np.ndarray:
    """`round(linspace(0, n-1, count))` with numpy's half-to-even rounding, as the LLP
    scripts (AVVP-ECCV20 extract_rgb_feat.py) pick 80 of a clip's frames (repeats frames
    when there are fewer than `count`)."""
    return np.round(np.linspace(0, n_frames - 1, count)).astype(np.int64)
