"""Run one ffmpeg command whose outputs are pipes, and collect each pipe's bytes.

The cut stage asks ffmpeg for the audio and the frames of a clip in one call: audio on
stdout (`pipe:1`), JPEGs on file descriptor 3 (`pipe:3`), so the input is opened, demuxed
and seeked once. The argument list is built with ffmpeg-python and run without a shell;
it is recorded verbatim with the outputs.
"""

from __future__ import annotations

import os
import subprocess
import threading
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


def clip_input(path: str | Path, seek_s: float, duration_s: float | None):  # -> ffmpeg node
    """The input, seeked (`-ss`) and limited (`-t`) only when the clip is not the whole file."""
    opts: dict[str, object] = {}
    if seek_s > 0:
        opts["ss"] = f"{seek_s:.6f}"
    if duration_s is not None:
        opts["t"] = f"{duration_s:.6f}"
    return ffmpeg.input(str(path), **opts)


def compile_args(*outputs) -> list[str]:  # outputs: ffmpeg-python output nodes
    stream = outputs[0] if len(outputs) == 1 else ffmpeg.merge_outputs(*outputs)
    return ffmpeg.compile(stream.global_args(*GLOBAL_ARGS), cmd="ffmpeg")


def run(args: list[str], timeout_s: float) -> tuple[bytes, bytes]:
    """Run ffmpeg; returns (bytes of pipe:1, bytes of pipe:3). Raises DecodeError."""
    read3, write3 = os.pipe()
    chunks: dict[str, list[bytes]] = {"out": [], "fd3": [], "err": []}

    def drain(handle, key: str) -> None:
        for block in iter(lambda: handle.read(1 << 16), b""):
            chunks[key].append(block)

    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, close_fds=False,
                                preexec_fn=lambda: os.dup2(write3, 3))  # fd 3 = pipe:3
    except OSError as exc:
        os.close(read3)
        os.close(write3)
        raise DecodeError(f"cannot run ffmpeg: {exc}", "ffmpeg-missing") from None
    os.close(write3)
    with open(read3, "rb", buffering=0) as fd3:
        threads = [threading.Thread(target=drain, args=(h, k), daemon=True)
                   for h, k in ((proc.stdout, "out"), (proc.stderr, "err"), (fd3, "fd3"))]
        for t in threads:
            t.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise DecodeError(f"ffmpeg took over {timeout_s} s", "timeout") from None
        finally:
            for t in threads:
                t.join()
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode != 0:
        message = b"".join(chunks["err"]).decode("utf-8", "replace").strip().splitlines()
        raise DecodeError(message[-1] if message else f"ffmpeg exit {proc.returncode}")
    return b"".join(chunks["out"]), b"".join(chunks["fd3"])
