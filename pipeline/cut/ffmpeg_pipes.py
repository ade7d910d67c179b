"""Run one ffmpeg command whose outputs are pipes, and collect each pipe's bytes.

The cut stage asks ffmpeg for the audio and the frames of a clip in one call: audio on
stdout (`pipe:1`), JPEGs on file descriptor 3 (`pipe:3`), so the input is opened, demuxed
and seeked once. The argument list is built with ffmpeg-python and run without a shell;
it is recorded verbatim with the outputs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import ffmpeg

GLOBAL_ARGS = ("-nostdin", "-hide_banner", "-loglevel", "error")
PIPES = ("pipe:1", "pipe:3")  # what outputs may target, in this order


class DecodeError(Exception):
    """ffmpeg failed on a file that probed fine; `reason` is the ledger key."""

    def __init__(self, detail: str, reason: str = "decode-error") -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason


def clip_input(path: str | Path, seek_s: float, duration_s: float | None,
               threads: int | None = None):  # -> ffmpeg node
    """The input, seeked (`-ss`) and limited (`-t`) only when the clip is not the whole file;
    `threads` limits the decoder's threads."""
    opts: dict[str, object] = {} if threads is None else {"threads": threads}
    if seek_s > 0:
        opts["ss"] = f"{seek_s:.6f}"
    if duration_s is not None:
        opts["t"] = f"{duration_s:.6f}"
    return ffmpeg.input(str(path), **opts)


def compile_args(*outputs) -> list[str]:  # outputs: ffmpeg-python output nodes
    stream = outputs[0] if len(outputs) == 1 else ffmpeg.merge_outputs(*outputs)
    return ffmpeg.compile(stream.global_args(*GLOBAL_ARGS), cmd="ffmpeg")


def run(args: list[str], timeout_s: float) -> tuple[bytes, bytes]:
    """Run ffmpeg; returns (bytes of pipe:1, bytes of pipe:3). Raises DecodeError.

    posix_spawn places our pipes on the child's descriptors 1, 2 and 3 without running any
    Python code between fork and exec, which is safe even with threads in this process."""
    binary = shutil.which(args[0])
    if binary is None:
        raise DecodeError(f"{args[0]} not found on PATH", "ffmpeg-missing")
    pipes = {key: os.pipe() for key in ("out", "err", "fd3")}  # both ends close-on-exec
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, pipes["out"][1], 1),
               (os.POSIX_SPAWN_DUP2, pipes["err"][1], 2),
               (os.POSIX_SPAWN_DUP2, pipes["fd3"][1], 3)]
    try:
        pid = os.posix_spawn(binary, args, os.environ, file_actions=actions)
    except OSError as exc:
        for r, w in pipes.values():
            os.close(r)
            os.close(w)
        raise DecodeError(f"cannot run ffmpeg: {exc}", "ffmpeg-missing") from None
    chunks: dict[str, list[bytes]] = {key: [] for key in pipes}

    def drain(key: str) -> None:
        with open(pipes[key][0], "rb", buffering=0) as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                chunks[key].append(block)

    for _, w in pipes.values():
        os.close(w)
    threads = [threading.Thread(target=drain, args=(key,), daemon=True) for key in pipes]
    for t in threads:
        t.start()
    status = _wait(pid, timeout_s)
    for t in threads:
        t.join()
    if status is None:
        raise DecodeError(f"ffmpeg took over {timeout_s} s", "timeout")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        message = b"".join(chunks["err"]).decode("utf-8", "replace").strip().splitlines()
        raise DecodeError(message[-1] if message else f"ffmpeg exit {code}")
    return b"".join(chunks["out"]), b"".join(chunks["fd3"])


def run_probe(args: list[str], timeout_s: float) -> str:
    """Run an ffprobe command; its stdout as text. Raises DecodeError."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                              check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise DecodeError(f"{args[0]} not found on PATH", "ffmpeg-missing") from None
    except subprocess.TimeoutExpired:
        raise DecodeError(f"{args[0]} took over {timeout_s} s", "timeout") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise DecodeError(lines[-1] if lines else f"{args[0]} exit {done.returncode}")
    return done.stdout


def _wait(pid: int, timeout_s: float) -> int | None:
    """The child's wait status, or None after killing it at the timeout."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
