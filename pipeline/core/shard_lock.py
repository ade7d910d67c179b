"""One writer per stage and shard: an advisory lock on `state/<stage>/<shard>.lock`.

Two runs of one stage on one shard would delete each other's temp files and do every clip
twice. The lock is `fcntl.flock` on a file under the work directory: the kernel drops it when
the holder dies (SIGKILL included), so a stale lock never needs cleaning, and a second run
fails at once instead of waiting. It is advisory and per machine: the design already gives each
shard one node, so it guards against a second run by mistake, not against other hosts on a
network filesystem (where flock may not be shared).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.core.errors import InputError


def lock_path(workdir: str | Path, stage: str, shard_name: str) -> Path:
    return Path(workdir) / "state" / stage / f"{shard_name}.lock"


@contextmanager
def shard_lock(workdir: str | Path, stage: str, shard_name: str,
               unit: str = "shard") -> Iterator[Path]:
    """Hold the lock of (stage, shard) for the block; `InputError` (exit 2) when another
    process holds it, naming that process. `unit` names what `shard_name` is in that
    message (`avel train` locks a run, `train/<task>__<model>`, the same way)."""
    path = lock_path(workdir, stage, shard_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise InputError(f"another `avel {stage}` (pid {holder}) is working on {unit} "
                             f"{shard_name}; wait for it to finish or stop it, then rerun",
                             file=path) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the only descriptor releases the flock
