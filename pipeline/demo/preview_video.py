"""A short MP4 that shows a clip with its ground-truth and predicted event bars under the
frames, so a person can see at a glance where a model is right and where it is not."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline.core import atomic

BAR_HEIGHT = 18
PALETTE = [(228, 26, 28), (55, 126, 184), (77, 175, 74), (152, 78, 163), (255, 127, 0),
           (166, 86, 40), (247, 129, 191), (153, 153, 153), (255, 255, 51), (0, 128, 128)]
BACKGROUND = (40, 40, 40)


def colour(label: int) -> tuple[int, int, int]:
    return BACKGROUND if label < 0 else PALETTE[label % len(PALETTE)]


def bars_image(width: int, gt: Sequence[int], pred: Sequence[int], t: float,
               duration: float) -> np.ndarray:
    """Two rows (GT, prediction) of one cell per segment, and a play-head at time t."""
    image = Image.new("RGB", (width, 2 * BAR_HEIGHT), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    label_w = 34
    cells = len(gt)
    cell_w = (width - label_w) / cells
    for row, (name, labels) in enumerate([("GT", gt), ("Pred", pred)]):
        y0 = row * BAR_HEIGHT
        draw.text((2, y0 + 3), name, fill=(255, 255, 255))
        for i, label in enumerate(labels):
            x0 = label_w + i * cell_w
            draw.rectangle([x0, y0 + 1, x0 + cell_w - 2, y0 + BAR_HEIGHT - 2], fill=colour(int(label)))
    x = label_w + (width - label_w) * min(max(t / duration, 0.0), 1.0)
    draw.line([(x, 0), (x, 2 * BAR_HEIGHT)], fill=(255, 255, 255), width=2)
    return np.asarray(image)


def write_preview(video: str | Path, gt: Sequence[int], pred: Sequence[int], out: str | Path,
                  *, seconds: float | None = None, fps: int = 8) -> Path:
    """Render `video` (first `seconds`) with GT/prediction bars below; -1 = background."""
    from moviepy import VideoClip, VideoFileClip  # the `demo` extra

    source = VideoFileClip(str(video), audio=False)
    duration = min(seconds or source.duration, source.duration)
    width = source.w - source.w % 2
    height = source.h - source.h % 2

    def frame(t: float) -> np.ndarray:
        top = source.get_frame(min(t, source.duration - 1e-3))[:height, :width]
        return np.vstack([top, bars_image(width, gt, pred, t, len(gt))])

    clip = VideoClip(frame_function=frame, duration=duration)
    out = Path(out)
    try:
        with atomic.atomic_path(out) as temp:
            tmp = temp.with_suffix(".mp4")
            clip.write_videofile(str(tmp), fps=fps, codec="libx264", audio=False, logger=None,
                                 preset="ultrafast", ffmpeg_params=["-pix_fmt", "yuv420p"])
            tmp.replace(temp)
    finally:
        clip.close()
        source.close()
    return out
