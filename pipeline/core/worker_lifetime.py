"""Worker processes die with the stage that started them, however the stage ends.

`PR_SET_PDEATHSIG` kills a worker when its *parent* dies, but a forkserver worker's parent is
the forkserver, not the stage; so each worker also watches the stage's pid and, once it is gone,
kills its own children (ffmpeg) and itself. The forkserver and multiprocessing's resource
tracker leave on their own once the stage and every worker have closed their pipes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
POLL_S = 0.5


def _set_parent_death_signal() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the watchdog alone
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purpose: its parent has not reaped it yet
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _watch(stage_pid: int) -> None:
    while _alive(stage_pid):
        time.sleep(POLL_S)
    for child in _children(os.getpid()):
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass
    os.kill(os.getpid(), signal.SIGKILL)


def die_with(stage_pid: int) -> None:
    """Worker initializer (`initializer=die_with, initargs=(os.getpid(),)`; or a DataLoader
    `worker_init_fn` through `functools.partial`)."""
    _set_parent_death_signal()
    if not _alive(stage_pid):  # the stage died before we got here (it may be pid 1 in Docker)
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch, args=(stage_pid,), name="die-with-stage", daemon=True).start()


def die_with_stage(stage_pid: int, worker_id: int) -> None:
    """`die_with` in the shape of a DataLoader `worker_init_fn`."""
    die_with(stage_pid)
