"""Open an HDF5 file someone else made without letting it read anything but itself.

HDF5 can point outside the file: a dataset with *external storage* reads raw bytes from any
path (`/etc/passwd` included), an *external link* opens another file, a *virtual dataset* maps
other files' datasets. h5py follows all three silently, so a planted file could pull outside
bytes into the feature store. Every file avel reads from a user (imports, released features,
order files, original training files) and every store file in a work directory goes through
`open_checked`, which walks the file once (one link lookup per object, no data read) and refuses
all three. Our own `index.h5` is virtual by design: `virtual_within` admits virtual sources that
resolve to files inside that one directory.

Two more ways a small file makes a reader misbehave are refused here too: a *chunk* declared
so large that reading one value decompresses it whole (a few MB of gzip'd zeros declaring a
2 GB chunk took 2.15 GB of memory; `MAX_CHUNK_BYTES`, the HDF5 twin of the zip-member cap),
and rows declared but never written, which HDF5 reads back as fill values (zeros) instead of
failing (`check_rows_stored`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import h5py

from pipeline.core.errors import InputError, first_line

#: the most bytes one HDF5 chunk may declare: reading any value of a chunk decompresses all of
#: it. avel's own chunks are one feature row (VGG-19 pool5 of ten seconds: 1 MB float32) or
#: one clip's frames; `AVEL_MAX_HDF5_CHUNK_BYTES` raises (or, in tests, lowers) it.
MAX_CHUNK_BYTES = 64 << 20


def max_chunk_bytes() -> int:
    value = os.environ.get("AVEL_MAX_HDF5_CHUNK_BYTES", "")
    return int(value) if value.isdigit() else MAX_CHUNK_BYTES


def refusal(fh: h5py.File, virtual_within: Path | None = None) -> str | None:
    """Why `fh` may not be read (naming the object), or None when it holds only itself."""
    here = Path(fh.filename).resolve()
    stack: list[tuple[h5py.Group, str]] = [(fh, "")]
    while stack:
        group, prefix = stack.pop()
        for name in group:
            where = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                return f"{where} is an external link to {link.filename}:{link.path}"
            if isinstance(link, h5py.SoftLink):
                continue  # a path inside this file: its target is walked where it lives
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append((obj, where))
            elif isinstance(obj, h5py.Dataset):
                why = _dataset_refusal(obj, where, here, virtual_within)
                if why:
                    return why
    return None


def _dataset_refusal(ds: h5py.Dataset, where: str, here: Path,
                     virtual_within: Path | None) -> str | None:
    if ds.external:
        return f"{where} keeps its data in external files ({ds.external[0][0]!s}, ...)"
    if ds.chunks:
        declared = math.prod(ds.chunks) * ds.dtype.itemsize
        if declared > max_chunk_bytes():
            return (f"{where} declares chunks of {declared:,} bytes ({list(ds.chunks)} x "
                    f"{ds.dtype.itemsize}), over the {max_chunk_bytes():,}-byte cap on what "
                    "one read may decompress")
    if ds.is_virtual:
        for source in ds.virtual_sources():
            name = source.file_name
            target = here if name == "." else (here.parent / name).resolve()
            if target == here:
                continue
            if virtual_within is None or target.parent != virtual_within.resolve():
                return f"{where} is a virtual dataset reading {name}"
    return None


def open_checked(path: str | Path, *, virtual_within: Path | None = None,
                 what: str = "HDF5 file") -> h5py.File:
    """`h5py.File(path, "r")` once the file is known to read nothing outside itself; an
    `InputError` (exit 2) naming the file otherwise, or when it is not readable HDF5."""
    path = Path(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(f"not a readable {what} ({first})", file=path) from None
    try:
        why = refusal(fh, virtual_within)
    except (OSError, KeyError, RuntimeError) as exc:
        fh.close()
        raise InputError(f"damaged {what} ({first_line(exc, 200)})", file=path) from None
    if why:
        fh.close()
        raise InputError(f"refused: {why}; avel reads only data stored inside the file",
                         file=path)
    return fh


def check_rows_stored(ds: h5py.Dataset, rows: Iterable[int], path: str | Path,
                      field: str) -> None:
    """Refuse (`InputError` naming the file and dataset) when any of `rows` (indices along the
    first axis) has no data in the file: HDF5 reads never-written storage back as its fill
    value, so a file declaring 10^9 rows and holding none would import as zeros. Reads no
    data: the chunks' index (or the contiguous block's size) says what is stored."""
    wanted = sorted({int(r) for r in rows})
    if not wanted or ds.size == 0:
        return
    layout = ds.id.get_create_plist().get_layout()
    if layout == h5py.h5d.COMPACT:
        return  # compact data lives in the object header: always there
    row_bytes = math.prod(ds.shape[1:]) * ds.dtype.itemsize
    if layout != h5py.h5d.CHUNKED:  # contiguous storage is allocated whole or not at all
        stored = ds.id.get_storage_size()
        if stored < (wanted[-1] + 1) * row_bytes:
            raise InputError(f"declares {ds.shape[0]:,} rows but stores {stored:,} bytes, less "
                             f"than rows 0-{wanted[-1]} need ({(wanted[-1] + 1) * row_bytes:,}); "
                             "unwritten rows would read as zeros", file=path, field=field)
        return
    chunks = ds.chunks
    per_row_chunk = math.prod(-(-s // c) for s, c in zip(ds.shape[1:], chunks[1:]))
    starts = {r - r % chunks[0] for r in wanted}  # first axis offsets of the chunks needed
    if ds.id.get_num_chunks() < len(starts) * per_row_chunk:
        raise InputError(f"declares {ds.shape[0]:,} rows but stores {ds.id.get_num_chunks():,} "
                         f"chunks, fewer than the {len(starts) * per_row_chunk:,} holding the "
                         f"{len(wanted):,} rows needed; unwritten rows would read as zeros",
                         file=path, field=field)
    found: dict[int, int] = {}

    def seen(info: h5py.h5d.StoreInfo) -> None:
        start = int(info.chunk_offset[0])  # offsets are unique and on the chunk grid
        if start in starts:
            found[start] = found.get(start, 0) + 1
    ds.id.chunk_iter(seen)
    lost = next((r for r in wanted if found.get(r - r % chunks[0], 0) < per_row_chunk), None)
    if lost is not None:
        raise InputError(f"declares {ds.shape[0]:,} rows but row {lost} (needed) was never "
                         "written; unwritten rows would read as zeros", file=path, field=field)
