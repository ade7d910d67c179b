"""Helpers for the PSP tests: a work directory with an AVE-style manifest and a feature store
holding small class-separable VGGish-/VGG-19-shaped features (no videos needed)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from pipeline.commands.init import init_workdir
from pipeline.core.config import load_config
from pipeline.core.sharding import Shard
from pipeline.datasets.manifest import build_manifest
from pipeline.store import features as store

CLASSES = ["Beep low", "Beep mid", "Beep high", "Whistle"]


def separable_features(n: int, n_classes: int, seed: int = 0):
    """Annotations rows + features where event seconds carry a class-specific offset."""
    rng = np.random.default_rng(seed)
    rows, audio, video = [], [], []
    for i in range(n):
        c = i % n_classes
        start = int(rng.integers(0, 4))
        end = int(rng.integers(start + 3, 11))
        a = rng.normal(0, 0.3, (10, 128)).astype(np.float32)
        v = np.abs(rng.normal(0, 0.3, (10, 7, 7, 512))).astype(np.float32)
        a[start:end, c * 16:(c + 1) * 16] += 2.0
        v[start:end, :, :, c * 64:(c + 1) * 64] += 1.0
        rows.append((CLASSES[c], f"vid{i:04d}", start, end))
        audio.append(a)
        video.append(v)
    return rows, np.stack(audio), np.stack(video)


def make_workdir(root: Path, n: int = 48, n_classes: int = 4, seed: int = 0,
                 splits: tuple[int, int] = (32, 40)) -> Path:
    """Work dir with avel.yaml (ave), manifest.parquet and features/{vggish,vgg19}."""
    wd = Path(root)
    init_workdir(wd, "ave")
    data = wd / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows, audio, video = separable_features(n, n_classes, seed)
    (data / "Annotations.txt").write_text(
        "Category&VideoID&Quality&StartTime&EndTime\n"
        + "".join(f"{c}&{v}&good&{s}&{e}\n" for c, v, s, e in rows), encoding="utf-8")
    idx = np.arange(n)
    for name, sel in (("train", idx[:splits[0]]), ("val", idx[splits[0]:splits[1]]),
                      ("test", idx[splits[1]:])):
        with h5py.File(data / f"{name}_order.h5", "w") as fh:
            fh.create_dataset("order", data=sel.astype(np.int64))
    manifest = build_manifest(wd, load_config(wd))
    shard = Shard(0, 1)
    ids = list(manifest["clip_id"])
    for name, feats in (("vggish", audio), ("vgg19", video)):
        target = wd / "features" / name / f"{shard.name}.h5"
        store.write_part(target, ids, feats, {"extractor": name, "weights": "random"})
        store.consolidate(target, ids)
        store.build_index(target.parent, ids)
    return wd


def per_second_truth(n: int, n_classes: int = 4, seed: int = 0) -> dict[str, list[str]]:
    """Per-second class names ("background" outside the event) of make_workdir's clips, from
    the generator's own rows: the reference a test counts predictions against."""
    rows, _, _ = separable_features(n, n_classes, seed)
    return {vid: [c if s <= t < e else "background" for t in range(10)] for c, vid, s, e in rows}
