"""Open an HDF5 file someone else made without letting it read anything but itself.

HDF5 can point outside the file: a dataset with *external storage* reads raw bytes from any
path (`/etc/passwd` included), an *external link* opens another file, a *virtual dataset* maps
other files' datasets. h5py follows all three silently, so a planted file could pull outside
bytes into the feature store. Every file avel reads from a user (imports, released features,
order files, original training files) and every store file in a work directory goes through
`open_checked`, which walks the file once (one link lookup per object, no data read) and refuses
all three. Our own `index.h5` is virtual by design: `virtual_within` admits virtual sources that
resolve to files inside that one directory.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from pipeline.core.errors import InputError, first_line


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
