"""What `avel eval` leaves next to the metrics: a per-class accuracy table (CSV + text) and a
localization timeline PNG (ground truth vs prediction over the 10 segments) for a sample of
videos. Works for any family whose `predict` returns "pred"/"target" [N,T] class ids."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from models.metrics.ave import per_class_accuracy


def write_per_class_table(pred: np.ndarray, target: np.ndarray, class_names: Sequence[str],
                          path: str | Path) -> list[dict[str, object]]:
    rows = per_class_accuracy(pred, target, class_names)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["class_id", "class", "segments", "accuracy"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "accuracy": "" if np.isnan(r["accuracy"]) else f"{r['accuracy']:.2f}"})
    os.replace(tmp, path)
    return rows


def format_table(rows: Sequence[dict[str, object]]) -> str:
    width = max([len(str(r["class"])) for r in rows] + [5])
    lines = [f"{'class':<{width}}  segments  accuracy"]
    for r in rows:
        acc = r["accuracy"]
        acc_s = "     -" if isinstance(acc, float) and np.isnan(acc) else f"{acc:6.2f}"
        lines.append(f"{str(r['class']):<{width}}  {r['segments']:>8}  {acc_s:>8}")
    return "\n".join(lines)


def plot_timelines(pred: np.ndarray, target: np.ndarray, names: Sequence[str],
                   class_names: Sequence[str], path: str | Path, n: int = 6,
                   seed: int = 0) -> Path | None:
    """One row pair per sampled video: ground truth above prediction, one cell per segment,
    coloured by class (background grey), labelled with the class name. None (and no file)
    when there is nothing to plot (`n` 0 or no video)."""
    if n <= 0 or len(pred) == 0:
        return None
    pick = np.random.default_rng(seed).choice(len(pred), size=min(n, len(pred)), replace=False)
    bg = len(class_names) - 1
    cmap = colormaps["tab20"]
    fig = Figure(figsize=(10, 1.2 * len(pick) + 0.4))  # no pyplot: no global backend state
    axes = fig.subplots(len(pick), 1, squeeze=False)
    for ax, i in zip(axes[:, 0], sorted(pick)):
        for row, (_label, seq) in enumerate((("truth", target[i]), ("pred", pred[i]))):
            for t, c in enumerate(seq):
                colour = (0.85, 0.85, 0.85) if c == bg else cmap(int(c) % 20)
                ax.add_patch(Rectangle((t, 1 - row), 1, 0.9, color=colour))
                if c != bg:
                    ax.text(t + 0.5, 1.45 - row, str(class_names[int(c)])[:8], ha="center",
                            va="center", fontsize=6)
        ax.set_xlim(0, len(target[i]))
        ax.set_ylim(0, 2)
        ax.set_yticks([0.45, 1.45], ["pred", "truth"])
        ax.set_xticks(range(len(target[i]) + 1))
        acc = float((pred[i] == target[i]).mean() * 100)
        ax.set_title(f"{names[i]}  ({acc:.0f}% of segments right)", fontsize=8)
    axes[-1, 0].set_xlabel("second")
    return save_png(fig, path)


def save_png(fig: Figure, path: str | Path, dpi: int = 90) -> Path:
    """Lay out `fig` and write it atomically: a viewer never opens half a PNG."""
    fig.tight_layout()
    path = Path(path)
    # named like every other temp (`.<name>.tmp`), so the sweep of a rerun removes a killed
    # writer's leftover; the format is given since the name no longer ends in it
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    os.replace(tmp, path)
    return path
