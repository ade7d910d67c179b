"""The feature store: per extractor, one HDF5 file per shard (`features/<name>/<shard>.h5`:
`features` [N, ...] and `clip_id` [N], rows in manifest order) and an `index.h5` built once
all shards are through.

Lookups are O(1) whatever the dataset size: each shard file's `clip_id` column is that
shard's table, and `FeatureReader` merges the tables into one dict `clip_id → (shard, row)`
and keeps the shard files open, so a read is one row of one file (no virtual dataset in
between: with hash sharding a manifest-ordered virtual dataset needs one mapping per clip,
and HDF5 walks all of them on every read — 1.1 s per read at 101,072 clips).

`index.h5` holds the merged table (`clip_id`, `shard`, `row`, and the shard names in attr
`shards`) and, for users who want one array, a virtual `features` with the shard files one
after another (one mapping per shard), row i being clip `clip_id[i]`.

Crash safety (parts, consolidate) is `pipeline.store.parts`, shared with the clip store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.core import atomic
from pipeline.core.errors import InputError
from pipeline.core.safe_hdf5 import open_checked
from pipeline.store import parts, room
from pipeline.store.parts import Pick, parts_dir  # noqa: F401 (parts_dir: part of this API)

STR = h5py.string_dtype("utf-8")
BLOCK_BYTES = 64 << 20  # most bytes of feature rows held at once while copying or reading
SHARD_GLOB = "*-of-*.h5"


def _decode(values: np.ndarray) -> list[str]:
    return [c.decode() if isinstance(c, bytes) else str(c) for c in values]


def _block_rows(ds: h5py.Dataset) -> int:
    row_bytes = int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize
    return max(1, BLOCK_BYTES // max(row_bytes, 1))


def _runs(pairs: Sequence[tuple[int, int]], limit: int) -> Iterator[tuple[int, int, int]]:
    """(src_start, dst_start, length) runs of consecutive (src, dst) pairs, at most `limit` long."""
    start = None
    for s, d in pairs:
        if start is not None and start[2] < limit and (s, d) == (start[0] + start[2], start[1] + start[2]):
            start = (start[0], start[1], start[2] + 1)
            continue
        if start is not None:
            yield start
        start = (s, d, 1)
    if start is not None:
        yield start


class FeatureRows:
    """The feature store's layout: row i of `features` belongs to `clip_id[i]`."""

    def clip_ids(self, fh: h5py.File) -> list[str]:
        return _decode(fh["clip_id"][()])

    def create(self, out: h5py.File, sample: h5py.File, rows: int) -> None:
        first = sample["features"]
        out.create_dataset("features", shape=(rows, *first.shape[1:]), dtype=first.dtype,
                           chunks=(1, *first.shape[1:]) if rows else None)

    def copy(self, src: h5py.File, out: h5py.File, picks: list[Pick]) -> None:
        ds, target = src["features"], out["features"]
        pairs = sorted((r, d) for _, r, d in picks)
        for s, d, n in _runs(pairs, _block_rows(ds)):  # contiguous runs in bounded blocks
            target[d:d + n] = ds[s:s + n]

    def finish(self, out: h5py.File, ids: list[str]) -> None:
        out.create_dataset("clip_id", data=np.array(ids, dtype=object), dtype=STR)


LAYOUT = FeatureRows()


def write_part(shard_file: Path, clip_ids: Sequence[str], features: np.ndarray,
               attrs: Mapping[str, Any]) -> Path:
    """Persist finished clips of a shard atomically; call before marking them done."""
    if len(clip_ids) != len(features):
        raise ValueError("one feature row per clip id")
    features = np.asarray(features)

    def fill(fh: h5py.File) -> None:
        fh.create_dataset("features", data=features,
                          chunks=(1, *features.shape[1:]) if len(features) else None)
        fh.create_dataset("clip_id", data=np.array(list(clip_ids), dtype=object), dtype=STR)
        for key, value in attrs.items():
            fh.attrs[key] = parts.attr_value(value)
    return parts.write_part(shard_file, fill,
                            room.part_bytes(features.nbytes, len(features)))


def stored_clip_ids(shard_file: Path) -> set[str]:
    """Every clip whose features are on disk for this shard (shard file and parts)."""
    return parts.stored_clip_ids(shard_file, LAYOUT)


def consolidate(shard_file: Path, order: Sequence[str] | None = None,
                attrs: Mapping[str, Any] | None = None) -> int:
    """Fold parts into the shard file; rows follow `order` (manifest order) when given.
    Later parts win over earlier rows of the same clip. Returns the row count."""
    return parts.consolidate(shard_file, LAYOUT, order, attrs)


def shard_files(features_dir: Path) -> list[Path]:
    return sorted(Path(features_dir).glob(SHARD_GLOB))


def build_index(features_dir: Path, order: Sequence[str] | None = None) -> Path:
    """Write `index.h5` from the shard files' own clip tables, one file at a time.
    With `order` (the manifest), rows of clips no longer in it are left out of the table."""
    shards = shard_files(features_dir)
    if not shards:
        raise FileNotFoundError(f"no shard files in {features_dir}")
    keep = set(order) if order is not None else None
    ids: list[str] = []
    shard_col: list[np.ndarray] = []
    row_col: list[np.ndarray] = []
    counts: list[int] = []
    shape, dtype, attrs = None, None, {}
    for s, path in enumerate(shards):
        with h5py.File(path, "r") as fh:
            ds = fh["features"]
            if shape is None:
                shape, dtype, attrs = ds.shape[1:], ds.dtype, dict(fh.attrs)
            elif ds.shape[1:] != shape:
                raise ValueError(f"{path}: feature shape {ds.shape[1:]} differs from {shape}")
            here = _decode(fh["clip_id"][()])
        counts.append(len(here))
        rows = np.arange(len(here), dtype=np.int64)
        if keep is not None:
            mask = np.fromiter((c in keep for c in here), dtype=bool, count=len(here))
            here, rows = [c for c, m in zip(here, mask) if m], rows[mask]
        ids += here
        shard_col.append(np.full(len(here), s, dtype=np.int32))
        row_col.append(rows)
    total = sum(counts)
    layout = h5py.VirtualLayout(shape=(total, *shape), dtype=dtype)
    start = 0
    for path, n in zip(shards, counts):  # one mapping per shard
        if n:
            layout[start:start + n] = h5py.VirtualSource(path.name, "features", shape=(n, *shape))
        start += n
    target = Path(features_dir) / "index.h5"
    atomic.remove_orphaned_temps(target.parent, target.name)  # of a killed index writer
    with room.named_write_errors(target), atomic.atomic_path(target) as temp:
        with h5py.File(temp, "w", libver="latest") as fh:
            fh.create_virtual_dataset("features", layout, fillvalue=0)
            fh.create_dataset("clip_id", data=np.array(ids, dtype=object), dtype=STR)
            fh.create_dataset("shard", data=np.concatenate(shard_col))
            fh.create_dataset("row", data=np.concatenate(row_col))
            fh.create_dataset("shard_rows", data=np.asarray(counts, dtype=np.int64))
            for key, value in attrs.items():
                fh.attrs[key] = value
            fh.attrs["shards"] = json.dumps([p.name for p in shards])
            fh.attrs["shard_stamps"] = json.dumps([shard_stamp(p) for p in shards])
    return target


def shard_stamp(path: Path) -> dict[str, Any]:
    """What `index.h5` remembers of a shard file it was built from: a shard rewritten since
    (consolidate renames a new file into place) has another size or mtime."""
    info = path.stat()
    return {"name": path.name, "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def index_staleness(features_dir: Path) -> str | None:
    """Why `features_dir/index.h5` no longer describes the shard files beside it (a shard
    rewritten, added or removed since it was built), or None when it does or is absent.
    Its rows point into the shard files by row number, so a stale index reads wrong rows."""
    index = Path(features_dir) / "index.h5"
    if not index.is_file():
        return None
    try:
        with h5py.File(index, "r") as fh:
            recorded = fh.attrs.get("shard_stamps")
    except OSError as exc:
        return f"unreadable ({str(exc).strip().splitlines()[0][:200] if str(exc).strip() else 'OSError'})"
    if recorded is None:
        return "it records no shard sizes (built by an older avel)"
    then = {s["name"]: s for s in json.loads(recorded)}
    now = {p.name: shard_stamp(p) for p in shard_files(features_dir)}
    for name in sorted(then.keys() | now.keys()):
        if name not in now:
            return f"{name} was removed since it was built"
        if name not in then:
            return f"{name} was added since it was built"
        if then[name] != now[name]:
            return (f"{name} changed since it was built (size {then[name]['size']} -> "
                    f"{now[name]['size']} bytes)")
    return None


def open_index(features_dir: Path) -> h5py.File:
    """`index.h5`, once it is known to match the shard files (else an `InputError` saying
    which shard changed and to run `avel index`); its virtual `features` may read only them."""
    features_dir = Path(features_dir)
    stale = index_staleness(features_dir)
    if stale:
        raise InputError(f"stale: {stale}; rebuild it with `avel index -e {features_dir.name}`",
                         file=features_dir / "index.h5")
    return open_checked(features_dir / "index.h5", virtual_within=features_dir, what="index")


class FeatureReader:
    """clip_id → feature array over every shard file of one extractor, in O(1): the shard
    files' clip tables merged into one dict, every shard file kept open. Rows are read
    straight from the shard files, never through `index.h5`. A clip found twice (in one
    shard file, or in two) is refused with both places named: avel never writes that, and
    which copy is right cannot be told."""

    def __init__(self, features_dir: Path) -> None:
        self.dir = Path(features_dir)
        self._files = shard_files(self.dir)
        if not self._files:
            raise FileNotFoundError(f"no features in {self.dir}")
        self._handles: list[h5py.File] = []
        self._datasets: list[h5py.Dataset] = []
        self._where: dict[str, tuple[int, int]] = {}
        self._ids: list[list[str]] = []
        try:
            for s, path in enumerate(self._files):
                fh = open_checked(path, what="features file")  # nothing read from outside it
                self._handles.append(fh)
                self._datasets.append(fh["features"])
                ids = _decode(fh["clip_id"][()])
                if len(ids) != len(fh["features"]):
                    raise InputError(f"{len(ids)} clip ids for {len(fh['features'])} feature "
                                     "rows", file=path, field="clip_id")
                self._ids.append(ids)
                for r, c in enumerate(ids):
                    if c in self._where:  # which row is right cannot be told: refuse
                        first, row = self._files[self._where[c][0]], self._where[c][1]
                        raise InputError(
                            f"clip {c!r} appears twice (row {r} here, row {row} of "
                            f"{first.name}), which avel never writes; move this file aside and "
                            "rerun `avel extract` to make its clips again",
                            file=path, field="clip_id")
                    self._where[c] = (s, r)
        except BaseException:
            self.close()
            raise
        self.attrs = dict(self._handles[0].attrs)

    @property
    def clip_ids(self) -> list[str]:
        return list(self._where)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one clip's features."""
        return tuple(self._datasets[0].shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self._datasets[0].dtype

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._where

    def __getitem__(self, clip_id: str) -> np.ndarray:
        s, r = self._where[clip_id]
        return self._datasets[s][r]

    def locate(self, clip_id: str) -> tuple[Path, int]:
        """(shard file, row) of a clip."""
        s, r = self._where[clip_id]
        return self._files[s], r

    def iter_rows(self, clip_ids: Sequence[str] | set[str] | None = None
                  ) -> Iterator[tuple[str, np.ndarray]]:
        """(clip_id, row) shard by shard, each shard read sequentially in bounded blocks:
        the order to read a whole store in (export, in-memory training). Only `clip_ids`
        when given."""
        wanted = None if clip_ids is None else set(clip_ids)
        for s, (ds, ids) in enumerate(zip(self._datasets, self._ids)):
            block = _block_rows(ds)
            for start in range(0, len(ids), block):
                names = ids[start:start + block]
                if wanted is not None and not any(c in wanted for c in names):
                    continue
                rows = ds[start:start + len(names)]
                for r, (c, row) in enumerate(zip(names, rows), start=start):
                    if (wanted is None or c in wanted) and self._where[c] == (s, r):
                        yield c, row

    def close(self) -> None:
        for fh in self._handles:
            fh.close()
        self._handles, self._datasets = [], []

    def __enter__(self) -> FeatureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_features(workdir: str | Path, name: str) -> FeatureReader:
    return FeatureReader(Path(workdir) / "features" / name)
