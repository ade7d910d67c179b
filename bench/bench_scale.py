"""The feature store at dataset scale: a synthetic VGGSound-AVEL-like store of N clips over S
hash shards (written as the extract stage writes it: parts of `flush_clips`, one consolidate
per shard), then the operations a full-size run does on it, each in a fresh process so that
its peak RSS is its own:

- random read: `open_features(W, name)[clip_id]` for random clips (ms/clip), and the same
  rows read straight from their shard files with h5py (the floor),
- `avel index` (`rebuild_index`): time and peak RSS,
- `avel export --format vggsound-avel` of the vggish store: time and peak RSS,
- training data: items/s of the store-backed training dataset (vggish + [10,1024,7,7]
  float16 maps for the first `--maps-clips` clips) through a DataLoader with workers,
- consolidate of one shard made of `--parts` parts: time and peak RSS (memory must not grow
  with the part count).

    python -m bench.bench_scale [--clips 2000] [--shards 8] [--parts 200] [--maps-clips 256]

At 101,072 clips x 64 shards the vggish store is ~0.5 GB (float32), the export writes
101,072 zips, each [10,1024,7,7] float16 map is 1 MB (`--maps-clips`) and the consolidate
step writes parts x 2 MB twice; mind the disk and the shared CPUs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")

from pipeline.core.sharding import Shard, shard_of  # noqa: E402
from pipeline.core.workdir import Workdir  # noqa: E402
from pipeline.store import features as store  # noqa: E402

FLUSH = 64  # the extract stage's default flush_clips
PART_ROWS = 2  # [10,1024,7,7] float16 maps per part in the consolidate step
SHAPES = {"vggish": (10, 128), "resnet_layer3": (10, 1024, 7, 7)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_manifest(root: Path, n: int) -> list[str]:
    ids = [f"v{i:010d}_{i % 300}" for i in range(n)]
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 141, n)
    avc = rng.integers(0, 2, (n, 10)).astype(np.int8)
    pd.DataFrame({"clip_id": ids, "video_id": [c[:11] for c in ids],
                  "start_s": [float(i % 300) for i in range(n)],
                  "end_s": [float(i % 300 + 10) for i in range(n)],
                  "labels": [[f"class_{k}"] for k in classes],
                  "category": [f"class_{k}" for k in classes], "class_id": classes,
                  "split": rng.choice(["train", "val", "test"], n, p=[0.6, 0.2, 0.2]),
                  "avc": list(avc),
                  # AVE-style columns too, so that code which only trains AVE-style
                  # manifests (avel before the avc labels) can be measured on the same store
                  "event_start": np.zeros(n, dtype=int), "event_end": np.full(n, 10)}
                 ).to_parquet(root / "manifest.parquet")
    return ids


def build_store(root: Path, name: str, ids: list[str], shards: int, dtype: str) -> float:
    """Parts of FLUSH clips per shard, then one consolidate per shard; seconds taken."""
    wd = Workdir(root)
    shape = SHAPES[name]
    by_shard: dict[int, list[str]] = {}
    for c in ids:
        by_shard.setdefault(shard_of(c, shards), []).append(c)
    started = time.perf_counter()
    for s, members in sorted(by_shard.items()):
        shard_file = wd.features_file(name, Shard(s, shards))
        for k in range(0, len(members), FLUSH):
            group = members[k:k + FLUSH]
            rows = np.stack([row_for(c, shape) for c in group]).astype(dtype)
            store.write_part(shard_file, group, rows, {"extractor": name, "weights": "random"})
        store.consolidate(shard_file, order=members)
    return time.perf_counter() - started


def row_for(clip_id: str, shape: tuple[int, ...]) -> np.ndarray:
    """A row derived from the clip id, so a read can be checked against it."""
    seed = int(clip_id[1:11])
    return np.full(shape, seed % 1000, dtype=np.float32) + np.arange(shape[-1], dtype=np.float32) / 1e3


# -- measured steps, each run in a fresh process ---------------------------------------
def step_index(root: str) -> dict[str, Any]:
    from pipeline.store.index import rebuild_index
    t0 = time.perf_counter()
    rebuild_index(root, "vggish")
    return {"s": time.perf_counter() - t0, "rss_mb": peak_rss_mb()}


def step_random_read(root: str, ids: list[str], shards: int) -> dict[str, Any]:
    import h5py
    t0 = time.perf_counter()
    reader = store.open_features(root, "vggish")
    open_s = time.perf_counter() - t0
    sample = random.Random(0).sample(ids, min(len(ids), 1000))
    t0 = time.perf_counter()
    for c in sample:
        row = reader[c]
        if row[0, 0] != int(c[1:11]) % 1000:
            raise AssertionError(f"wrong row for {c}")
    ms = (time.perf_counter() - t0) * 1e3 / len(sample)
    reader.close()
    # the floor: the same rows straight from their (already open) shard files
    wd = Workdir(root)
    handles = {s: h5py.File(wd.features_file("vggish", Shard(s, shards)), "r") for s in range(shards)}
    rows = {}
    for s, fh in handles.items():
        for r, c in enumerate(fh["clip_id"][()]):
            rows[c.decode()] = (s, r)
    t0 = time.perf_counter()
    for c in sample:
        s, r = rows[c]
        handles[s]["features"][r]
    floor_ms = (time.perf_counter() - t0) * 1e3 / len(sample)
    for fh in handles.values():
        fh.close()
    return {"open_s": open_s, "ms": ms, "floor_ms": floor_ms, "rss_mb": peak_rss_mb()}


def step_export(root: str) -> dict[str, Any]:
    from pipeline.export import vggsound_avel
    out = Path(root) / "export"
    t0 = time.perf_counter()
    vggsound_avel.export(root, out, visual="resnet_layer3")
    seconds = time.perf_counter() - t0
    files = sum(1 for _ in (out / "audio_feature").iterdir())
    shutil.rmtree(out)
    return {"s": seconds, "files": files, "rss_mb": peak_rss_mb()}


def step_train_data(root: str, items: int, workers: int) -> dict[str, Any]:
    import torch

    from pipeline.core.config import Config, DatasetConfig, TrainConfig
    from pipeline.train.stage import load_training_data
    config = Config(dataset=DatasetConfig(name="vggsound-avel"),
                    train=TrainConfig(task="vggsound-avel-fully", in_memory="never"))
    t0 = time.perf_counter()
    data = load_training_data(root, config, "vggish", "resnet_layer3")
    setup_s = time.perf_counter() - t0
    dataset = data.datasets["train"]
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0),
                                         collate_fn=getattr(dataset, "collate_fn", None))
    seen, t0 = 0, time.perf_counter()
    batches = iter(loader)
    next(batches)  # workers started and their readers open: steady state from here
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for batch in batches:
        seen += len(batch["audio"])
        if seen >= items:
            break
    seconds = time.perf_counter() - t0
    return {"setup_s": setup_s, "first_batch_s": first_s, "items_per_s": seen / seconds,
            "items": seen, "rss_mb": peak_rss_mb()}


def step_consolidate(root: str, parts: int) -> dict[str, Any]:
    shard_file = Path(root) / "many" / "00000-of-00001.h5"
    rng = np.random.default_rng(0)
    order = []
    for p in range(parts):
        ids = [f"p{p:05d}_{k}" for k in range(PART_ROWS)]
        order += ids
        store.write_part(shard_file, ids, rng.standard_normal((PART_ROWS, 10, 1024, 7 * 7))
                         .astype("float16").reshape(PART_ROWS, 10, 1024, 7, 7),
                         {"extractor": "resnet_layer3"})
    before = peak_rss_mb()
    t0 = time.perf_counter()
    store.consolidate(shard_file, order=order)
    seconds = time.perf_counter() - t0
    shutil.rmtree(shard_file.parent)
    return {"s": seconds, "rss_mb": peak_rss_mb(), "rss_before_mb": before}


def _child(queue: mp.Queue, fn: str, args: tuple) -> None:
    try:
        queue.put(globals()[fn](*args))
    except BaseException as exc:  # report, do not hang the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def in_process(fn: str, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--parts", type=int, default=200, help="parts in the consolidate step")
    parser.add_argument("--maps-clips", type=int, default=256,
                        help="clips with [10,1024,7,7] maps (training-data step)")
    parser.add_argument("--train-items", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"],
                        help="vggish store dtype (the extract default is float32)")
    parser.add_argument("--skip", default="", help="comma-separated steps to skip")
    parser.add_argument("--dir", default=None, help="work in this directory (kept)")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    tmp = None if args.dir else tempfile.TemporaryDirectory()
    root = Path(args.dir or tmp.name)  # type: ignore[union-attr]
    root.mkdir(parents=True, exist_ok=True)
    try:
        print(f"{args.clips} clips x {args.shards} shards, vggish {args.dtype}", flush=True)
        ids = write_manifest(root, args.clips)
        print(f"build vggish store: {build_store(root, 'vggish', ids, args.shards, args.dtype):.1f} s",
              flush=True)
        if "train" not in skip:
            maps = ids[:args.maps_clips]
            print(f"build {len(maps)} clips of [10,1024,7,7] float16: "
                  f"{build_store(root, 'resnet_layer3', maps, args.shards, 'float16'):.1f} s", flush=True)
        if "index" not in skip:
            r = in_process("step_index", str(root))
            print(f"avel index: {r.get('s', 0):.1f} s, peak RSS {r.get('rss_mb', 0):.0f} MB "
                  f"{r.get('error', '')}", flush=True)
        if "read" not in skip:
            r = in_process("step_random_read", str(root), ids, args.shards)
            print(f"random read: open {r.get('open_s', 0):.2f} s, {r.get('ms', 0):.3f} ms/clip vs "
                  f"{r.get('floor_ms', 0):.3f} ms/clip straight from the shard files "
                  f"(ratio {r.get('ms', 0) / max(r.get('floor_ms', 1e-9), 1e-9):.2f}), "
                  f"peak RSS {r.get('rss_mb', 0):.0f} MB {r.get('error', '')}", flush=True)
        if "export" not in skip:
            r = in_process("step_export", str(root))
            print(f"export vggsound-avel (vggish): {r.get('s', 0):.1f} s for {r.get('files', 0)} zips "
                  f"({r.get('files', 0) / max(r.get('s', 1e-9), 1e-9):.0f} clips/s), peak RSS "
                  f"{r.get('rss_mb', 0):.0f} MB {r.get('error', '')}", flush=True)
        if "train" not in skip:
            r = in_process("step_train_data", str(root), args.train_items, args.workers)
            print(f"training data (vggish + [10,1024,7,7] f16, {args.workers} workers): setup "
                  f"{r.get('setup_s', 0):.1f} s, first batch {r.get('first_batch_s', 0):.1f} s, then "
                  f"{r.get('items_per_s', 0):.0f} items/s, peak RSS "
                  f"{r.get('rss_mb', 0):.0f} MB {r.get('error', '')}", flush=True)
        if "consolidate" not in skip:
            for parts in (max(args.parts // 4, 1), args.parts):
                r = in_process("step_consolidate", str(root), parts)
                print(f"consolidate {parts} parts x {PART_ROWS} maps: {r.get('s', 0):.1f} s, peak RSS "
                      f"{r.get('rss_mb', 0):.0f} MB (before {r.get('rss_before_mb', 0):.0f}) "
                      f"{r.get('error', '')}", flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
