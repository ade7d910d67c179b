"""Work directories for the export/import tests: a real manifest (from the shipped AVE /
LLP lists, or a tiny VGGSound-AVEL meta) and a feature store filled with random rows
through the store's own write_part/consolidate/build_index."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import yaml

from pipeline.core.config import load_config
from pipeline.core.sharding import Shard, shard_of
from pipeline.core.workdir import Workdir
from pipeline.datasets.manifest import build_manifest, load_manifest
from pipeline.store import features as store


def make_workdir(root: Path, dataset: dict, num_shards: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "avel.yaml").write_text(yaml.safe_dump(
        {"dataset": dataset, "sharding": {"num_shards": num_shards}}))
    build_manifest(root, load_config(root))
    return root


def ave_workdir(root: Path, shared_data: Path, limit: int = 30) -> Path:
    return make_workdir(root, {"name": "ave", "limit": limit, "source": "local", "videos_dir": "v",
                               "files": {"annotations": str(shared_data / "ave" / "Annotations.txt"),
                                         "orders_dir": str(shared_data / "ave")}})


def llp_workdir(root: Path, shared_data: Path, limit: int = 12) -> Path:
    d = shared_data / "llp"
    return make_workdir(root, {"name": "llp", "limit": limit, "files": {
        "train": str(d / "AVVP_train.csv"), "val": str(d / "AVVP_val_pd.csv"),
        "test": str(d / "AVVP_test_pd.csv")}})


def vggsound_avel_workdir(root: Path, n: int = 6) -> Path:
    """A meta CSV in the released format (category,video_id,split) over 4 categories."""
    root.mkdir(parents=True, exist_ok=True)
    cats = ["Bark", "Cat purring", "Chainsaw", "Violin"]
    (root / "cats.txt").write_text("\n".join(cats) + "\n")
    lines = ["category,video_id,split"]
    for i in range(n):
        lines.append(f"{cats[i % 4]},vid-{i:02d}_x_{10 * i:06d},{('train', 'val', 'test')[i % 3]}")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return make_workdir(root, {"name": "vggsound-avel", "files": {"meta": "meta.csv",
                                                                  "categories": "cats.txt"}})


def fill_store(workdir: Path, name: str, shape: tuple[int, ...], seed: int, skip: int = 0,
               dtype: str = "float32", extra_attrs: dict | None = None,
               make=None) -> dict[str, np.ndarray]:
    """Random features for every manifest clip but every `skip`-th (skip=0: none skipped),
    written part by part per shard, consolidated and indexed as an extractor would."""
    manifest = load_manifest(workdir)
    order = list(manifest["clip_id"])
    rng = np.random.default_rng(seed)
    count = load_config(workdir).sharding.num_shards
    wd = Workdir(workdir)
    rows: dict[str, np.ndarray] = {}
    attrs = {"extractor": name, "weights": "random", **(extra_attrs or {})}
    by_shard: dict[int, list[str]] = {}
    for i, clip in enumerate(order):
        if skip and i % skip == skip - 1:
            continue
        rows[clip] = (make(rng, shape) if make else rng.standard_normal(shape)).astype(dtype)
        by_shard.setdefault(shard_of(clip, count), []).append(clip)
    for s, clips in by_shard.items():
        shard_file = wd.features_file(name, Shard(s, count))
        half = len(clips) // 2
        for part in (clips[:half], clips[half:]):
            if part:
                store.write_part(shard_file, part, np.stack([rows[c] for c in part]), attrs)
        store.consolidate(shard_file, order=order, attrs=attrs)
    store.build_index(wd.features_dir(name), order=order)
    return rows


def read_store(workdir: Path, name: str) -> dict[str, np.ndarray]:
    with store.open_features(workdir, name) as reader:
        return {c: np.asarray(reader[c]) for c in reader.clip_ids}


def h5(path: Path, key: str = "avadataset") -> np.ndarray:
    with h5py.File(path, "r") as fh:
        return fh[key][()]
