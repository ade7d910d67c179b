"""A generated mini dataset with known per-second labels, for tests and the demo.

Each clip is 10 s of real H.264 + AAC mp4 (written by moviepy). One event per clip, in
AVE style: during the event seconds the audio is a class-specific tone and the frames
show a class-specific shape moving across; the other seconds are background (quiet
noise, a plain grey frame). The list files are written in AVE's own format
(Annotations.txt + {train,val,test}_order.h5), so the real readers and exporters run on it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from pipeline.core import atomic

log = logging.getLogger(__name__)

# name, tone (Hz), shape, RGB colour
CLASSES = [
    ("Beep low", 330.0, "square", (220, 40, 40)),
    ("Beep mid", 660.0, "circle", (40, 200, 60)),
    ("Beep high", 1320.0, "triangle", (50, 80, 230)),
    ("Whistle", 2200.0, "cross", (230, 200, 30)),
    ("Hum", 150.0, "bar", (200, 60, 200)),
    ("Chirp", 3000.0, "diamond", (30, 200, 200)),
]
DURATION = 10
AUDIO_RATE = 44100


@dataclass(frozen=True)
class SyntheticClip:
    video_id: str
    category: str
    class_index: int
    start: int  # first event second
    end: int  # one past the last event second
    split: str

    def second_labels(self) -> list[int]:
        """Per 1-s segment: the class index during the event, -1 for background."""
        return [self.class_index if self.start <= s < self.end else -1 for s in range(DURATION)]


def split_counts(k: int) -> tuple[int, int, int]:
    """(train, val, test) clips of a class with `k` clips: 60/20/20, the first 60% (rounded
    up) to train and the next 20% to val; from 3 clips on val and test get at least one each
    (taken from train), so every split of a small demo has every class (4 clips: 2/1/1,
    which the 60/20/20 rounding alone made 3/1/0)."""
    train = math.ceil(0.6 * k - 1e-9)
    val = math.ceil(0.8 * k - 1e-9) - train
    test = k - train - val
    if k >= 3:
        val, test = max(val, 1), max(test, 1)
        train = k - val - test
    return train, val, test


def plan(n_clips: int, n_classes: int = 4, seed: int = 0) -> list[SyntheticClip]:
    """Clips with balanced classes, random event spans of 2-10 s, and a 60/20/20 split of
    each class (`split_counts`)."""
    if not 1 <= n_classes <= len(CLASSES):
        raise ValueError(f"n_classes must be 1..{len(CLASSES)}")
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n_clips):
        c = i % n_classes
        length = int(rng.integers(2, DURATION + 1))
        start = int(rng.integers(0, DURATION - length + 1))
        rank, of_class = i // n_classes, len(range(c, n_clips, n_classes))
        train, val, _ = split_counts(of_class)
        split = "train" if rank < train else ("val" if rank < train + val else "test")
        clips.append(SyntheticClip(f"syn{seed:02d}{i:06d}", CLASSES[c][0], c, start, start + length,
                                   split))
    return clips


def _shape_mask(shape: str, h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    dx, dy = xx - cx, yy - cy
    if shape == "square":
        return (np.abs(dx) < r) & (np.abs(dy) < r)
    if shape == "circle":
        return dx**2 + dy**2 < r**2
    if shape == "triangle":
        return (dy < r) & (dy > -r) & (np.abs(dx) < (dy + r) / 2)
    if shape == "cross":
        return ((np.abs(dx) < r / 3) & (np.abs(dy) < r)) | ((np.abs(dy) < r / 3) & (np.abs(dx) < r))
    if shape == "bar":
        return (np.abs(dx) < r * 1.5) & (np.abs(dy) < r / 3)
    return np.abs(dx) + np.abs(dy) < r  # diamond


def render_clip(clip: SyntheticClip, path: Path, *, size: tuple[int, int] = (160, 120),
                fps: int = 16, seed: int = 0) -> None:
    """Write one clip as mp4 (H.264 + AAC), atomically."""
    w, h = size
    _, tone, shape, colour = CLASSES[clip.class_index]
    rng = np.random.default_rng(seed)
    noise_frame = rng.integers(0, 12, size=(h, w, 3), dtype=np.uint8)

    def frame(t: float) -> np.ndarray:
        img = np.full((h, w, 3), 110, dtype=np.uint8) + noise_frame
        if clip.start <= t < clip.end:
            progress = (t - clip.start) / max(1e-6, clip.end - clip.start)
            cx = w * (0.2 + 0.6 * progress)
            cy = h * (0.5 + 0.2 * np.sin(2 * np.pi * t))
            img[_shape_mask(shape, h, w, cx, cy, min(w, h) * 0.22)] = colour
        return img

    def sound(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        noise = 0.02 * np.sin(2 * np.pi * 97.0 * t) * np.sin(2 * np.pi * 13.0 * t)
        event = (t >= clip.start) & (t < clip.end)
        signal = noise + np.where(event, 0.5 * np.sin(2 * np.pi * tone * t), 0.0)
        return np.stack([signal, signal], axis=-1) if signal.ndim else np.array([signal, signal])

    from moviepy import AudioClip, VideoClip  # the `demo` extra

    video = VideoClip(frame_function=frame, duration=DURATION)
    audio = AudioClip(frame_function=sound, duration=DURATION, fps=AUDIO_RATE)
    video = video.with_audio(audio)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as temp:
        tmp_mp4 = temp.with_suffix(".mp4")
        try:
            video.write_videofile(str(tmp_mp4), fps=fps, codec="libx264", audio_codec="aac",
                                  audio_fps=AUDIO_RATE, logger=None, preset="ultrafast",
                                  ffmpeg_params=["-pix_fmt", "yuv420p"])
            tmp_mp4.replace(temp)
        finally:
            tmp_mp4.unlink(missing_ok=True)
            video.close()


def write_dataset(out_dir: str | Path, n_clips: int = 12, n_classes: int = 4, seed: int = 0,
                  size: tuple[int, int] = (160, 120), fps: int = 16) -> list[SyntheticClip]:
    """Write videos/, Annotations.txt, the three order files and labels.json into `out_dir`.

    Idempotent: clips whose mp4 already exists are not rendered again.
    """
    out = Path(out_dir)
    clips = plan(n_clips, n_classes, seed)
    try:
        iterator = tqdm(clips, desc="rendering clips", unit="clip", leave=False)
    except ImportError:  # pragma: no cover
        iterator = clips
    for i, clip in enumerate(iterator):
        target = out / "videos" / f"{clip.video_id}.mp4"
        if not target.exists():
            render_clip(clip, target, size=size, fps=fps, seed=seed * 100003 + i)
    lines = [f"{c.category}&{c.video_id}&good&{c.start}&{c.end}" for c in clips]
    atomic.write_text(out / "Annotations.txt", "\n".join(lines) + "\n")
    for split in ("train", "val", "test"):
        order = np.array([i for i, c in enumerate(clips) if c.split == split], dtype=np.int64)
        with atomic.atomic_path(out / f"{split}_order.h5") as temp:
            with h5py.File(temp, "w") as fh:
                fh.create_dataset("order", data=order)
    labels = {c.video_id: {"category": c.category, "class_index": c.class_index,
                           "seconds": c.second_labels(), "split": c.split} for c in clips}
    atomic.write_text(out / "labels.json", json.dumps(
        {"classes": [c[0] for c in CLASSES[:n_classes]], "clips": labels}, indent=1))
    return clips
