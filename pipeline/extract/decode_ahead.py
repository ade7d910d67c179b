"""Device decode between the loader and the packers: the JPEG bytes the workers ship become
each extractor's items on the device, several clips per batched decode call, ahead of the
thread that runs the networks.

Why: torchvision's CUDA decoder returns only once its stream has finished the batch (it
synchronises), so decoding clip by clip in the main thread leaves the device without queued
work for the length of every decode. Here, with `threads` ≥ 1, a reader thread takes clips
from the loader in order and groups them (up to `group_frames` shipped frames, at most
`MAX_GROUP_CLIPS` clips); group k goes to decode thread k mod `threads`, which decodes the
group's JPEGs in one `decode_batch` call and resizes them, on a CUDA stream of its own; the
main thread takes the groups back in the same round-robin order, so clips reach the packers
and the ledgers exactly in loader order. Each group carries a CUDA event recorded after its
work; the main thread's stream waits for it, and `record_stream` keeps the caching
allocator from handing the items' memory to the decode stream again before the main stream
is done with them. On the CPU (tests, the stand-in) the same threads run with no streams.

Bounded queues keep at most `threads × (2 × depth + 1)` groups between the loader and the
main thread, of which `threads × (depth + 1)` decoded (on the device); an error in any thread is
raised in the main thread in its place in the order; `close` stops and joins every thread.
A JPEG that does not decode rejects its own clip only: a group whose batched call fails is
decoded again clip by clip. With `threads` 0 each clip is decoded in the main thread when
it is reached, one call per clip: the reference path.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from extractors.base import ClipRejected, Extractor
from extractors.frame_extractor import FrameExtractor
from extractors.frames import decode_batch, side_stream, unpack_jpegs

log = logging.getLogger(__name__)

#: what a loader worker hands over per clip: (clip_id, {extractor: (kind, payload)}, packed
#: JPEGs or None); kind "items" (CPU items), "frames" (positions among the shipped JPEGs, ints) or
#: "rejected" ((reason, detail))
LoadedClip = tuple[str, dict[str, tuple[str, Any]], tuple[torch.Tensor, tuple[int, ...]] | None]

#: a group closes at this many clips even when they ship few frames (audio-only clips)
MAX_GROUP_CLIPS = 32
#: how long a thread blocks on a queue before it looks at the stop flag again
_POLL_S = 0.1


@dataclass
class ReadyClip:
    """One clip with its "frames" payloads replaced by ("items", items on the device) or
    ("rejected", (reason, detail)); other payloads as the loader gave them."""

    clip_id: str
    payloads: dict[str, tuple[str, Any]]


@dataclass
class _Group:
    clips: list[ReadyClip]
    seconds: float = 0.0  # decode + resize time in the thread that did it
    calls: int = 0  # decode_batch calls (1, or 1 + one per clip after a bad JPEG)
    event: Any = None  # torch.cuda.Event recorded after the group's device work


@dataclass
class _Failure:
    error: BaseException


_END = object()  # no more groups


def shipped_frames(clip: LoadedClip) -> int:
    """How many JPEGs of this clip need decoding (0 when no payload asks for frames)."""
    _, payloads, packed = clip
    if packed is None or not any(kind == "frames" for kind, _ in payloads.values()):
        return 0
    return len(packed[1])


def decode_clips(clips: list[LoadedClip], extractors: Mapping[str, Extractor],
                 device: torch.device, slot: int = 0) -> tuple[list[ReadyClip], int]:
    """The shipped JPEGs of all `clips` in one `decode_batch` call, then each extractor's
    items (`items_on_device`, per clip, as the reference path does). A batch that fails to
    decode is decoded again clip by clip, so a broken JPEG rejects only its clip.
    Returns the clips in order and the number of decode calls made."""
    jpegs = [unpack_jpegs(*clip[2]) if shipped_frames(clip) and clip[2] is not None else []
             for clip in clips]
    wanted = [i for i, frames in enumerate(jpegs) if frames]
    images: list[list[torch.Tensor] | ClipRejected] = [[] for _ in clips]
    calls = 0
    if wanted:
        calls += 1
        try:
            flat = decode_batch([j for i in wanted for j in jpegs[i]], device, slot=slot)
            at = 0
            for i in wanted:
                images[i] = flat[at:at + len(jpegs[i])]
                at += len(jpegs[i])
        except ClipRejected as exc:
            if len(wanted) == 1:
                images[wanted[0]] = exc
            else:
                for i in wanted:  # which clip holds the bad JPEG: each on its own
                    calls += 1
                    try:
                        images[i] = decode_batch(jpegs[i], device, slot=slot)
                    except ClipRejected as one:
                        images[i] = one
    ready = []
    for (clip_id, payloads, _), decoded in zip(clips, images):
        out: dict[str, tuple[str, Any]] = {}
        for name, (kind, payload) in payloads.items():
            if kind != "frames":
                out[name] = (kind, payload)
            elif isinstance(decoded, ClipRejected):
                out[name] = ("rejected", (decoded.reason, str(decoded)))
            else:
                extractor = extractors[name]
                if not isinstance(extractor, FrameExtractor):
                    raise TypeError(f"{name} was shipped frames but takes no frames")
                out[name] = ("items", extractor.items_on_device([decoded[k] for k in payload]))
        ready.append(ReadyClip(clip_id, out))
    return ready, calls


@dataclass
class DecodeAhead:
    """Iterate over it once for the clips in loader order, each with its frames decoded;
    `close` (also run when the iteration ends or is abandoned) stops the threads.

    `decode_s` sums the decode + resize time of every thread (with `threads` ≥ 1 it
    overlaps the main thread's work), `inline_s` is the part spent on the main thread
    (`threads` 0), `calls` counts `decode_batch` calls."""

    source: Iterator[LoadedClip]
    extractors: Mapping[str, Extractor]
    device: torch.device
    threads: int = 2
    group_frames: int = 256
    depth: int = 2
    decode_s: float = 0.0
    inline_s: float = 0.0
    calls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _inboxes: list[queue.Queue[Any]] = field(default_factory=list)
    _outboxes: list[queue.Queue[Any]] = field(default_factory=list)

    def __iter__(self) -> Iterator[ReadyClip]:
        return self._inline() if self.threads == 0 else self._ahead()

    # -- threads 0: the reference path ----------------------------------------------------
    def _inline(self) -> Iterator[ReadyClip]:
        for clip in self.source:
            if not shipped_frames(clip):
                yield ReadyClip(clip[0], clip[1])
                continue
            t0 = time.perf_counter()
            (ready,), calls = decode_clips([clip], self.extractors, self.device)
            seconds = time.perf_counter() - t0
            self.decode_s += seconds
            self.inline_s += seconds
            self.calls += calls
            yield ready

    # -- threads ≥ 1 ----------------------------------------------------------------------
    def _ahead(self) -> Iterator[ReadyClip]:
        n = self.threads
        if self.device.type == "cuda" and self.device.index is None:  # the main thread's device
            self.device = torch.device("cuda", torch.cuda.current_device())
        self._inboxes = [queue.Queue(maxsize=self.depth) for _ in range(n)]
        self._outboxes = [queue.Queue(maxsize=self.depth) for _ in range(n)]
        self._workers = [threading.Thread(target=self._read, name="avel-decode-reader", daemon=True)]
        self._workers += [threading.Thread(target=self._decode, args=(i,), name=f"avel-decode-{i}",
                                           daemon=True) for i in range(n)]
        for worker in self._workers:
            worker.start()
        consumer = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        try:
            for seq in itertools.count():
                item = self._take(seq % n)
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                self.decode_s += item.seconds
                self.calls += item.calls
                if consumer is not None and item.event is not None:
                    consumer.wait_event(item.event)
                    for clip in item.clips:
                        for kind, payload in clip.payloads.values():
                            if kind == "items" and payload.device.type == "cuda":
                                payload.record_stream(consumer)
                yield from item.clips
        finally:
            self.close()

    def _read(self) -> None:
        """Loader → groups, in order, round-robin over the decode threads' inboxes."""
        seq, group, frames = 0, [], 0
        last: Any = _END
        try:
            for clip in self.source:
                if self._stop.is_set():
                    return
                group.append(clip)
                frames += shipped_frames(clip)
                if frames >= self.group_frames or len(group) >= MAX_GROUP_CLIPS:
                    if not self._put(self._inboxes[seq % self.threads], group):
                        return
                    seq, group, frames = seq + 1, [], 0
            if group:
                if not self._put(self._inboxes[seq % self.threads], group):
                    return
                seq += 1
        except BaseException as exc:  # e.g. a loader worker died: the main thread raises it
            last = _Failure(exc)
        for k in range(self.threads):  # the end (or the error) first where the main looks next
            if not self._put(self._inboxes[(seq + k) % self.threads], last if k == 0 else _END):
                return

    def _decode(self, index: int) -> None:
        stream = None
        if self.device.type == "cuda":
            stream = side_stream(self.device, "work", index)  # its resizes run here
        with torch.inference_mode(), (torch.cuda.stream(stream) if stream is not None
                                      else contextlib.nullcontext()):
            while True:
                item = self._get(self._inboxes[index])
                if item is None:  # stopped
                    return
                if item is _END or isinstance(item, _Failure):
                    self._put(self._outboxes[index], item)
                    return
                try:
                    t0 = time.perf_counter()
                    clips, calls = decode_clips(item, self.extractors, self.device, slot=index + 1)
                    event = None
                    if stream is not None:
                        event = torch.cuda.Event()
                        event.record(stream)
                    result: _Group | _Failure = _Group(clips, time.perf_counter() - t0, calls, event)
                except BaseException as exc:  # raised in the main thread, in its place
                    result = _Failure(exc)
                if not self._put(self._outboxes[index], result) or isinstance(result, _Failure):
                    return

    # -- queues that give up when stopped -------------------------------------------------
    def _put(self, box: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                box.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, box: queue.Queue[Any]) -> Any:
        while not self._stop.is_set():
            try:
                return box.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return None

    def _take(self, index: int) -> Any:
        """The main thread's next group from decode thread `index`; a thread that ended
        without handing one back (it cannot, short of a bug) is an error, not a hang."""
        box, worker = self._outboxes[index], self._workers[1 + index]
        while True:
            try:
                return box.get(timeout=_POLL_S)
            except queue.Empty:
                if not worker.is_alive() and box.empty():
                    raise RuntimeError(f"{worker.name} ended without handing back its clips") from None

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop and join every thread (a reader inside the loader returns with its next clip)."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            worker.join(timeout=max(deadline - time.monotonic(), 0.0))
            if worker.is_alive():
                log.warning("%s did not stop within %.0f s", worker.name, timeout_s)
