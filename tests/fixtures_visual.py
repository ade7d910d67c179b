"""Builders for visual-extraction tests: JPEG frames, cut-clip shard files and a work dir.

The cut stage is built in parallel, so tests write `clips/<shard>.h5` themselves through
`pipeline.store.clips`, exactly as the cut stage leaves it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from pipeline.core.sharding import Shard, shard_of
from pipeline.core.workdir import Workdir
from pipeline.store import clips as clip_store


def jpeg_frames(n: int, seed: int, size: tuple[int, int] = (48, 36)) -> list[bytes]:
    """`n` JPEGs with smooth content (gradients + a moving square) plus noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(n):
        base = np.stack([(xx * 5 + i * 3) % 256, (yy * 7 + seed * 11) % 256, (xx + yy + i) % 256], -1)
        x0 = (i * 2) % max(w - 8, 1)
        base[4:12, x0:x0 + 8] = 255
        pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=90)
        frames.append(buf.getvalue())
    return frames


def write_workdir(root: Path, clips: dict[str, int], *, num_shards: int = 1,
                  extract: dict[str, Any] | None = None, seed: int = 0) -> Workdir:
    """A work dir with avel.yaml, a manifest (clip order = dict order) and cut clips;
    `clips` maps clip_id → number of frames."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"dataset": {"name": "ave"}, "sharding": {"num_shards": num_shards},
              "extract": {"num_workers": 0, "weights": {}, **(extract or {})}}
    (root / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    ids = list(clips)
    pd.DataFrame({"clip_id": ids, "video_id": ids, "source": ids, "start_s": 0.0, "end_s": 10.0,
                  "labels": [[] for _ in ids], "split": "train"}).to_parquet(root / "manifest.parquet")
    wd = Workdir(root)
    for index in range(num_shards):
        shard = Shard(index, num_shards)
        mine = {c: n for c, n in clips.items() if shard_of(c, num_shards) == index}
        if not mine:
            continue
        media = {c: clip_store.ClipMedia(audio=np.zeros(160, np.int16), sample_rate=16000,
                                         frames=jpeg_frames(n, seed + k),
                                         frame_times=np.arange(n) / max(n / 10, 1))
                 for k, (c, n) in enumerate(mine.items())}
        shard_file = wd.clips_file(shard)
        clip_store.write_part(shard_file, media)
        clip_store.consolidate(shard_file)
    return wd


#: a small VGG-19 pool5 recipe for CPU tests: 32 px inputs (pool5 1x1), 2 segments of 2 frames
TINY_VGG = {"image_size": 32, "segments": 2, "frames_per_segment": 2}
TINY_RESNET = {"image_size": 32, "frames": 4, "min_frames": 2}
# vgg19 + resnet152 in one pass, tiny and seeded (the one-pass and decode-ahead tests)
TWO_EXTRACTORS = {
    "options": {"vgg19": TINY_VGG, "resnet152": TINY_RESNET},
    "weights": {"vgg19": "random", "resnet152": "random"},
    "seed": 2,
    "cpu_threads": 1,
}
