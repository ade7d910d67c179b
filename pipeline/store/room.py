"""Writing store files on a disk that may fill up: check the room first, and name a full disk
as one when HDF5 reports it.

HDF5 reports a failed write as a RuntimeError (or an OSError without an errno) whose text
holds `errno = 28`; worse, a write that fails while h5py closes a file can take the process
down (measured: SIGSEGV when consolidation ran out of room on a 150 kB tmpfs). So every store
file is written only after `require_room` found space for it, and `named_write_errors` turns
what HDF5 does report into `OSError(ENOSPC, ..., path)`: the command line's exit 5, "finished
work is kept", which is then true: parts already written stay, the clips of the part that
did not fit stay pending, and a rerun after freeing space redoes only those."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

#: errors a write can meet that are the disk's or the user's, not avel's
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)
#: HDF5 metadata (superblock, object headers, chunk index) on top of the data: measured 12 kB
#: for a two-row part, about 1 kB a row beyond that
FILE_OVERHEAD, ROW_OVERHEAD = 16 << 10, 1 << 10


def part_bytes(data_bytes: int, rows: int) -> int:
    """About how many bytes an HDF5 file of `rows` rows holding `data_bytes` takes."""
    return data_bytes + FILE_OVERHEAD + rows * ROW_OVERHEAD


def require_room(directory: Path, need: int, what: str) -> None:
    """OSError(ENOSPC) naming `directory` unless it has `need` bytes free."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < need:
        raise OSError(errno.ENOSPC, f"{what} needs about {need:,} bytes, {free:,} are free",
                      str(directory))


@contextlib.contextmanager
def named_write_errors(path: Path) -> Iterator[None]:
    """HDF5's write failures with an errno in their text → that OSError, naming `path`."""
    try:
        yield
    except (RuntimeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        found = re.search(r"errno = (\d+)", str(exc))
        if found and int(found.group(1)) in WRITE_ERRNOS:
            code = int(found.group(1))
            raise OSError(code, os.strerror(code), str(path)) from None
        raise
