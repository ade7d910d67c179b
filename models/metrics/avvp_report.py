"""Localization timelines for AVVP evaluation: for a sample of videos, the ground truth and
the gated predictions of every class that appears in either, for audio and for visual,
over the 10 one-second segments. Written next to `metrics.json` by `avel eval --task avvp`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from models.metrics.eval_report import save_png


def plot_avvp_timelines(so_a: np.ndarray, so_v: np.ndarray, gt_a: np.ndarray, gt_v: np.ndarray,
                        names: Sequence[str], class_names: Sequence[str], path: str | Path,
                        n: int = 6, seed: int = 1) -> Path | None:
    """[N,25,10] arrays → PNG with one panel per sampled video; None when there is no video."""
    if len(names) == 0 or n <= 0:
        return None
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(names), size=min(n, len(names)), replace=False))
    fig = Figure(figsize=(8, 1.6 + 0.9 * len(picks) * 2))  # no pyplot: no global backend state
    axes = fig.subplots(len(picks), 1, squeeze=False)
    for ax, i in zip(axes[:, 0], picks):
        rows = []  # (label, truth row, prediction row)
        for modality, pred, truth in (("A", so_a[i], gt_a[i]), ("V", so_v[i], gt_v[i])):
            for c in np.flatnonzero(pred.any(axis=1) | truth.any(axis=1)):
                rows.append((f"{modality} {class_names[c]}", truth[c], pred[c]))
        for r, (_, truth, pred) in enumerate(rows):
            for s in range(truth.shape[0]):
                if truth[s]:
                    ax.add_patch(Rectangle((s, r - 0.4), 1, 0.4, color="tab:green", alpha=0.6))
                if pred[s]:
                    ax.add_patch(Rectangle((s, r), 1, 0.4, color="tab:blue", alpha=0.8))
        ax.set_xlim(0, gt_a.shape[-1])
        ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
        ax.set_yticks(range(len(rows)), [label for label, _, _ in rows], fontsize=7)
        ax.set_xticks(range(gt_a.shape[-1] + 1))
        ax.set_title(f"{names[i]}  (green: truth, blue: prediction)", fontsize=8)
    return save_png(fig, path)
