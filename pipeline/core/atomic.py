"""Atomic file writes: a reader sees either the old file or the whole new one, never half.

Every stage writes through these so that a process killed mid-write (SIGKILL, node loss)
leaves at most a stray temp file beside the target, which the next run overwrites.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def temp_path_for(target: Path) -> Path:
    """A unique temp name in the target's directory (same filesystem, so rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs should read like any file
    return Path(name)


def commit(temp: Path, target: Path) -> None:
    """Flush `temp` to disk and move it over `target`."""
    with open(temp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(temp, target)
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path to write to; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    temp = temp_path_for(target)
    try:
        yield temp
        commit(temp, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        if exc.errno is not None and exc.filename is None:  # e.g. ENOSPC from a library writer
            raise OSError(exc.errno, os.strerror(exc.errno), str(target)) from exc
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as temp:
        temp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def remove_stale_temps(directory: str | Path, target_name: str | None = None) -> int:
    """Delete temp files a killed run left behind (only those of `target_name` when given,
    so that a writer never removes the temp of another writer in the same directory)."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.glob(f".{target_name}.*.tmp" if target_name else ".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed
