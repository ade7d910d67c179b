"""Atomic file writes: a reader sees either the old file or the whole new one, never half.

Every stage writes through these so that a process killed mid-write (SIGKILL, node loss)
leaves at most a stray temp file beside the target. A temp file is named
`.<target>.<pid>@<host>.<random>.tmp`: the writer's identity is in the name, so a later run
can tell a killed writer's leftover (`remove_orphaned_temps`: its process is gone) from a
live writer's file, without a lock. A stage that holds the lock of its outputs (the shard
lock) removes every temp of those outputs instead (`remove_stale_temps`), whichever host
left it. Every stage, `avel export`, `avel train` and `avel index` sweep the directories
they write when they start, so a kill never leaves a temp file behind for good.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)
#: this machine's name as it appears in temp names (no dots, so a name parses from the right)
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^.]+\.tmp$")


def writer_tag() -> str:
    """`<pid>@<host>` of the calling process (read at each call: pool workers are forks)."""
    return f"{os.getpid()}@{HOST}"


def temp_path_for(target: Path) -> Path:
    """A unique temp name in the target's directory (same filesystem, so rename is atomic),
    carrying the writer's pid and host (see the module docstring)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{writer_tag()}.", suffix=".tmp",
                                dir=target.parent)
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


def writer_gone(temp: Path) -> bool:
    """True when `temp` was named by `temp_path_for` on this host and its writer process no
    longer runs. A temp of another host, or of a live process, is not known to be stale."""
    match = _TEMP_NAME.match(temp.name)
    if match is None or match["host"] != HOST:
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def glob_escape(name: str) -> str:
    """`name` as a glob pattern matching only itself."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True


def remove_orphaned_temps(directory: str | Path, target_name: str | None = None, *,
                          recursive: bool = False) -> int:
    """Delete the temp files and directories under `directory` (of `target_name` only when
    given; in subdirectories too when `recursive`) whose writer was killed (`writer_gone`).
    Safe while other processes write there: a live writer's temp is left alone. Returns
    how many were removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    pattern = f".{glob_escape(target_name)}.*.tmp" if target_name else ".*.tmp"
    found = directory.rglob(pattern) if recursive else directory.glob(pattern)
    return sum(_remove(path) for path in list(found) if writer_gone(path))


def remove_stale_temps(directory: str | Path, target_name: str | None = None) -> int:
    """Delete temp files a killed run left behind (only those of `target_name` when given,
    so that a writer never removes the temp of another writer in the same directory).

    For a caller that holds the lock of these targets (it is their only writer): every
    matching temp goes, whichever process or host made it. Without such a lock, use
    `remove_orphaned_temps`."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    for path in list(directory.glob(f".{glob_escape(target_name)}.*.tmp" if target_name
                                     else ".*.tmp")):
        removed += _remove(path)
    return removed
