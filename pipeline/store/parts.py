"""Crash safety shared by the clip store and the feature store: finished clips are written as
small *part* files (temp + rename) before the ledger marks them done, and `consolidate` folds
the parts into the shard file (again temp + rename). A clip found in a part but still pending
in the ledger (killed between the two steps) is reconciled, not recomputed; later parts win
over earlier rows of the same clip, so a clip appears in the shard file exactly once.

The two stores lay a clip out differently (a row of a fixed-shape array, a group of
datasets); a `Layout` says how, and everything else lives here once. Consolidation streams:
one pass reads only the clip ids of each source, a second copies each source's winning
clips in bounded blocks, and no more than two files are open at a time, so memory and file
handles do not grow with the number of parts (a 1,580-part shard used to open all of them).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from pipeline.core import atomic
from pipeline.store import room

# (clip_id, row in the source file, row in the consolidated file)
Pick = tuple[str, int, int]


class Layout(Protocol):
    """How one store lays clips out in an HDF5 file."""

    def clip_ids(self, fh: h5py.File) -> list[str]:
        """The clips of a file, in its row order."""

    def create(self, out: h5py.File, sample: h5py.File, rows: int) -> None:
        """Make the (empty) datasets of a consolidated file of `rows` clips."""

    def copy(self, src: h5py.File, out: h5py.File, picks: list[Pick]) -> None:
        """Copy the picked clips of `src` into `out`."""

    def finish(self, out: h5py.File, ids: list[str]) -> None:
        """Write what follows from the final clip order (e.g. the clip_id column)."""


def parts_dir(shard_file: Path) -> Path:
    return shard_file.with_name(shard_file.stem + ".parts")


def part_paths(shard_file: Path) -> list[Path]:
    """Parts of a shard, oldest first (names start with the write time)."""
    return sorted(parts_dir(shard_file).glob("part-*.h5"))


def sources(shard_file: Path) -> list[Path]:
    return ([shard_file] if shard_file.is_file() else []) + part_paths(shard_file)


def write_part(shard_file: Path, fill: Callable[[h5py.File], None], size_hint: int = 0) -> Path:
    """A new part of `shard_file`, written by `fill` into a temp file and renamed into place;
    refused (ENOSPC, before any byte) when the disk has less than `size_hint` bytes free."""
    path = parts_dir(shard_file) / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    if size_hint:
        room.require_room(path.parent, size_hint, "the next store part")
    with room.named_write_errors(path), atomic.atomic_path(path) as temp:
        with h5py.File(temp, "w") as fh:
            fill(fh)
    return path


def stored_clip_ids(shard_file: Path, layout: Layout) -> set[str]:
    """Every clip stored for this shard (shard file and parts)."""
    ids: set[str] = set()
    for path in sources(shard_file):
        with h5py.File(path, "r") as fh:
            ids.update(layout.clip_ids(fh))
    return ids


def attr_value(value: Any) -> Any:
    """An attribute as HDF5 can hold it (containers become JSON)."""
    return value if isinstance(value, (str, int, float, bool, np.generic, np.ndarray)) else json.dumps(value)


def _same_attrs(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) or isinstance(b[k], np.ndarray)
               else a[k] == b[k] for k in a)


def consolidate(shard_file: Path, layout: Layout, order: Sequence[str] | None = None,
                attrs: Mapping[str, Any] | None = None) -> int:
    """Fold the parts into the shard file; clips follow `order` (unknown ones last, in the
    order first seen) when given. Returns the number of clips in the shard file."""
    atomic.remove_stale_temps(shard_file.parent, shard_file.name)  # a killed consolidate's
    atomic.remove_stale_temps(parts_dir(shard_file))  # and a killed write_part's leftovers
    parts = part_paths(shard_file)
    paths = ([shard_file] if shard_file.is_file() else []) + parts
    if not paths:
        return 0
    where: dict[str, tuple[int, int]] = {}  # clip -> (source, row) of its latest copy
    merged: dict[str, Any] = {}
    existing: dict[str, Any] = {}
    existing_ids: list[str] = []
    for f, path in enumerate(paths):  # pass 1: ids and attrs only, one file at a time
        with h5py.File(path, "r") as fh:
            ids_here = layout.clip_ids(fh)
            if f == 0 and path == shard_file:
                existing, existing_ids = dict(fh.attrs), ids_here
            merged.update(fh.attrs)
        for r, c in enumerate(ids_here):
            where[c] = (f, r)
    merged.update(attrs or {})
    ids = list(where)
    if order is not None:
        rank = {c: i for i, c in enumerate(order)}
        ids.sort(key=lambda c: rank.get(c, len(rank)))
    unchanged = _same_attrs(existing, {k: attr_value(v) for k, v in merged.items()})
    if not parts and ids == existing_ids and unchanged:
        return len(ids)  # already consolidated, in order: nothing to rewrite
    dst = {c: i for i, c in enumerate(ids)}
    picks: list[list[Pick]] = [[] for _ in paths]
    for c, (f, r) in where.items():
        picks[f].append((c, r, dst[c]))
    del where, dst
    shard_file.parent.mkdir(parents=True, exist_ok=True)
    # the new file is at most its sources' size; they stay until it is renamed into place
    room.require_room(shard_file.parent, sum(p.stat().st_size for p in paths),
                      f"folding {len(parts)} parts into {shard_file.name}")
    with room.named_write_errors(shard_file), atomic.atomic_path(shard_file) as temp:
        with h5py.File(temp, "w") as out:
            with h5py.File(paths[0], "r") as sample:
                layout.create(out, sample, len(ids))
            for f, path in enumerate(paths):  # pass 2: each source's winners, then close it
                if picks[f]:
                    with h5py.File(path, "r") as src:
                        layout.copy(src, out, picks[f])
                picks[f] = []
            layout.finish(out, ids)
            for key, value in merged.items():
                out.attrs[key] = attr_value(value)
    for path in parts:
        path.unlink(missing_ok=True)
    if parts_dir(shard_file).is_dir() and not any(parts_dir(shard_file).iterdir()):
        parts_dir(shard_file).rmdir()
    return len(ids)
