"""The feature store: per extractor, one HDF5 file per shard plus an `index.h5` that joins
the shards with virtual datasets, so `h5py.File(index)["features"]` reads like one array.

Crash safety without trusting HDF5 to survive a kill: each batch of finished clips is
written as a small *part* file (temp + rename), and only then marked done in the ledger.
`consolidate` folds the parts into the shard file (again temp + rename). A clip found in a
part but still pending in the ledger (killed between the two steps) is reconciled, not
recomputed, and a clip appears in the shard file exactly once whatever was interrupted.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.core.safe_hdf5 import open_checked
from pipeline.core import atomic

STR = h5py.string_dtype("utf-8")


def parts_dir(shard_file: Path) -> Path:
    return shard_file.with_name(shard_file.stem + ".parts")


def _write_h5(path: Path, clip_ids: Sequence[str], features: np.ndarray,
              attrs: Mapping[str, Any]) -> None:
    with atomic.atomic_path(path) as temp:
        with h5py.File(temp, "w") as fh:
            fh.create_dataset("features", data=features, chunks=(1, *features.shape[1:])
                              if len(features) else None)
            fh.create_dataset("clip_id", data=np.array(list(clip_ids), dtype=object), dtype=STR)
            for key, value in attrs.items():
                fh.attrs[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)


def write_part(shard_file: Path, clip_ids: Sequence[str], features: np.ndarray,
               attrs: Mapping[str, Any]) -> Path:
    """Persist finished clips of a shard atomically; call before marking them done."""
    if len(clip_ids) != len(features):
        raise ValueError("one feature row per clip id")
    path = parts_dir(shard_file) / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_h5(path, clip_ids, np.asarray(features), attrs)
    return path


def stored_clip_ids(shard_file: Path) -> set[str]:
    """Every clip whose features are on disk for this shard (shard file and parts)."""
    ids: set[str] = set()
    paths = ([shard_file] if shard_file.is_file() else []) + sorted(parts_dir(shard_file).glob("part-*.h5"))
    for path in paths:
        with h5py.File(path, "r") as fh:
            ids.update(c.decode() if isinstance(c, bytes) else c for c in fh["clip_id"][()])
    return ids


def consolidate(shard_file: Path, order: Sequence[str] | None = None,
                attrs: Mapping[str, Any] | None = None) -> int:
    """Fold parts into the shard file; rows follow `order` (manifest order) when given.

    Later parts win over earlier rows of the same clip, so nothing is duplicated. Rows are
    copied one at a time, so a shard larger than memory consolidates too.
    Returns the number of rows in the shard file.
    """
    atomic.remove_stale_temps(shard_file.parent, shard_file.name)  # a killed consolidate's
    atomic.remove_stale_temps(parts_dir(shard_file))  # and a killed write_part's leftovers
    parts = sorted(parts_dir(shard_file).glob("part-*.h5"))  # names start with the write time
    sources = ([shard_file] if shard_file.is_file() else []) + parts
    if not sources:
        return 0
    handles = [h5py.File(path, "r") for path in sources]
    try:
        where: dict[str, tuple[int, int]] = {}
        merged_attrs: dict[str, Any] = {}
        for f, fh in enumerate(handles):
            merged_attrs.update(fh.attrs)
            for r, c in enumerate(fh["clip_id"][()]):
                where[c.decode() if isinstance(c, bytes) else c] = (f, r)
        merged_attrs.update(attrs or {})
        ids = list(where)
        if order is not None:
            rank = {c: i for i, c in enumerate(order)}
            ids.sort(key=lambda c: rank.get(c, len(rank)))
        if not parts and ids == list(where) and dict(handles[0].attrs) == merged_attrs:
            return len(ids)  # already consolidated, in order: nothing to rewrite
        first = handles[0]["features"]
        with atomic.atomic_path(shard_file) as temp:
            with h5py.File(temp, "w") as out:
                feats = out.create_dataset("features", shape=(len(ids), *first.shape[1:]),
                                           dtype=first.dtype, chunks=(1, *first.shape[1:]))
                for i, c in enumerate(ids):
                    f, r = where[c]
                    feats[i] = handles[f]["features"][r]
                out.create_dataset("clip_id", data=np.array(ids, dtype=object), dtype=STR)
                for key, value in merged_attrs.items():
                    out.attrs[key] = value if isinstance(value, (str, int, float, bool, np.generic)) \
                        else json.dumps(value)
    finally:
        for fh in handles:
            fh.close()
    for path in parts:
        path.unlink(missing_ok=True)
    if parts_dir(shard_file).is_dir() and not any(parts_dir(shard_file).iterdir()):
        parts_dir(shard_file).rmdir()
    return len(ids)


def build_index(features_dir: Path, order: Sequence[str] | None = None) -> Path:
    """Write `index.h5`: virtual `features` and `clip_id` over every shard file, rows in
    `order` (clips missing from every shard are left out), else shard by shard."""
    shards = sorted(p for p in features_dir.glob("*-of-*.h5"))
    if not shards:
        raise FileNotFoundError(f"no shard files in {features_dir}")
    where: dict[str, tuple[int, int]] = {}
    shapes, dtype, attrs = None, None, {}
    for s, path in enumerate(shards):
        with h5py.File(path, "r") as fh:
            ds = fh["features"]
            if shapes is None:
                shapes, dtype, attrs = ds.shape[1:], ds.dtype, dict(fh.attrs)
            elif ds.shape[1:] != shapes:
                raise ValueError(f"{path}: feature shape {ds.shape[1:]} differs from {shapes}")
            for r, c in enumerate(fh["clip_id"][()]):
                where[c.decode() if isinstance(c, bytes) else c] = (s, r)
    ids = [c for c in order if c in where] if order is not None else list(where)
    # contiguous runs from the same shard become one mapping each
    runs: list[tuple[int, int, int, int]] = []  # shard, src_start, dst_start, length
    for dst, c in enumerate(ids):
        s, r = where[c]
        if runs and runs[-1][0] == s and runs[-1][1] + runs[-1][3] == r and runs[-1][2] + runs[-1][3] == dst:
            runs[-1] = (s, runs[-1][1], runs[-1][2], runs[-1][3] + 1)
        else:
            runs.append((s, r, dst, 1))
    n = len(ids)
    feat_layout = h5py.VirtualLayout(shape=(n, *shapes), dtype=dtype)
    counts = {}
    for path in shards:
        with h5py.File(path, "r") as fh:
            counts[path] = fh["features"].shape[0]
    sources = [h5py.VirtualSource(path.name, "features", shape=(counts[path], *shapes)) for path in shards]
    for s, src, dst, length in runs:
        feat_layout[dst:dst + length] = sources[s][src:src + length]
    target = features_dir / "index.h5"
    with atomic.atomic_path(target) as temp:
        with h5py.File(temp, "w", libver="latest") as fh:
            fh.create_virtual_dataset("features", feat_layout, fillvalue=0)
            fh.create_dataset("clip_id", data=np.array(ids, dtype=object), dtype=STR)
            for key, value in attrs.items():
                fh.attrs[key] = value
            fh.attrs["shards"] = json.dumps([p.name for p in shards])
    return target


class FeatureReader:
    """clip_id → feature array over every shard of one extractor (through index.h5 when
    present, else by opening the shard files)."""

    def __init__(self, features_dir: Path) -> None:
        self.dir = Path(features_dir)
        index = self.dir / "index.h5"
        self._files = [index] if index.is_file() else sorted(self.dir.glob("*-of-*.h5"))
        if not self._files:
            raise FileNotFoundError(f"no features in {self.dir}")
        self._handles = [open_checked(p, virtual_within=self.dir, what="features file")
                         for p in self._files]
        self._where: dict[str, tuple[int, int]] = {}
        for f, fh in enumerate(self._handles):
            for r, c in enumerate(fh["clip_id"][()]):
                self._where[c.decode() if isinstance(c, bytes) else c] = (f, r)
        self.attrs = dict(self._handles[0].attrs)

    @property
    def clip_ids(self) -> list[str]:
        return list(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._where

    def __getitem__(self, clip_id: str) -> np.ndarray:
        f, r = self._where[clip_id]
        return self._handles[f]["features"][r]

    def close(self) -> None:
        for fh in self._handles:
            fh.close()

    def __enter__(self) -> FeatureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_features(workdir: str | Path, name: str) -> FeatureReader:
    return FeatureReader(Path(workdir) / "features" / name)
