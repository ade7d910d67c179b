"""Cut outputs: per shard one HDF5 file `clips/<shard>.h5`, one group per clip.

Layout of group `/<clip_id>`:
  audio        int16 [samples] (mono) or [samples, channels], attr sample_rate
  frames       vlen uint8 [n_frames]: each row the bytes of one JPEG
  frame_times  float64 [n_frames]: seconds from the clip start
  attrs        recipe, frames_recipe, audio_recipe, ffmpeg_args (json), padded/trimmed samples,
               decoded_frames, anything else the cut stage records

Same crash-safety scheme as the feature store (`pipeline.store.parts`): finished clips go to
atomic part files, then `consolidate` folds them into the shard file by temp + rename. A
clip is visible only once its part is complete, and appears once however often a run was
killed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.core import atomic
from pipeline.store import parts
from pipeline.store.parts import parts_dir  # noqa: F401 (part of this API)

JPEG = h5py.vlen_dtype(np.dtype("uint8"))


@dataclass
class ClipMedia:
    audio: np.ndarray  # int16
    sample_rate: int
    frames: list[bytes]  # JPEG bytes
    frame_times: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)


class ClipGroups:
    """The clip store's layout: one group per clip, named by its id."""

    def clip_ids(self, fh: h5py.File) -> list[str]:
        return list(fh.keys())

    def create(self, out: h5py.File, sample: h5py.File, rows: int) -> None:
        pass  # groups are made as they are copied

    def copy(self, src: h5py.File, out: h5py.File, picks: list[parts.Pick]) -> None:
        for clip_id, _, _ in picks:
            src.copy(src[clip_id], out, name=clip_id)

    def finish(self, out: h5py.File, ids: list[str]) -> None:
        pass  # HDF5 lists groups by name; there is no row order to record


LAYOUT = ClipGroups()


def _put(fh: h5py.File, clip_id: str, media: ClipMedia) -> None:
    if clip_id in fh:
        del fh[clip_id]
    g = fh.create_group(clip_id)
    a = g.create_dataset("audio", data=np.asarray(media.audio, dtype=np.int16))
    a.attrs["sample_rate"] = int(media.sample_rate)
    rows = np.empty(len(media.frames), dtype=object)  # one vlen write, not one per frame
    for i, jpeg in enumerate(media.frames):  # item by item: equal lengths must not broadcast
        rows[i] = np.frombuffer(jpeg, dtype=np.uint8)
    g.create_dataset("frames", shape=(len(media.frames),), dtype=JPEG, data=rows)
    g.create_dataset("frame_times", data=np.asarray(media.frame_times, dtype=np.float64))
    for key, value in media.attrs.items():
        g.attrs[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)


def write_part(shard_file: Path, clips: Mapping[str, ClipMedia],
               file_attrs: Mapping[str, Any] | None = None) -> Path:
    """Persist finished clips atomically; call before marking them done in the ledger."""
    def fill(fh: h5py.File) -> None:
        for clip_id, media in clips.items():
            _put(fh, clip_id, media)
        for key, value in (file_attrs or {}).items():
            fh.attrs[key] = value
    return parts.write_part(shard_file, fill)


def stored_clip_ids(shard_file: Path) -> set[str]:
    return parts.stored_clip_ids(shard_file, LAYOUT)


def consolidate(shard_file: Path, file_attrs: Mapping[str, Any] | None = None) -> int:
    """Fold part files into the shard file (later parts win); returns the clip count."""
    if not parts.part_paths(shard_file) and shard_file.is_file():
        atomic.remove_stale_temps(shard_file.parent, shard_file.name)
        with h5py.File(shard_file, "r") as fh:
            return len(fh)
    return parts.consolidate(shard_file, LAYOUT, attrs=file_attrs)


def _read(group: h5py.Group) -> ClipMedia:
    attrs = dict(group.attrs)
    return ClipMedia(audio=group["audio"][()], sample_rate=int(group["audio"].attrs["sample_rate"]),
                     frames=[bytes(f) for f in group["frames"][()]],
                     frame_times=group["frame_times"][()], attrs=attrs)


def read_clip(shard_file: Path, clip_id: str) -> ClipMedia:
    """One clip, from the shard file or (before consolidation) from a part; the copy that
    consolidation would keep (the newest part's) when there are several."""
    reader = ClipReader(shard_file)
    try:
        return reader.read(clip_id)
    finally:
        reader.close()


class ClipReader:
    """Reads clips of one shard with its files opened once, not once per clip (a runner
    worker keeps one for its lifetime), and only what the caller uses: frames-only
    extractors never read the audio. Open it in the process that reads (after a fork)."""

    def __init__(self, shard_file: Path) -> None:
        self.shard_file = shard_file
        self._files: list[h5py.File] | None = None

    def _open(self) -> list[h5py.File]:
        if self._files is None:  # newest part first, then the shard file: later parts win
            paths = parts.part_paths(self.shard_file)[::-1]
            paths += [self.shard_file] if self.shard_file.is_file() else []
            self._files = [h5py.File(p, "r") for p in paths]
        return self._files

    def read(self, clip_id: str, *, audio: bool = True, frames: bool = True) -> ClipMedia:
        for fh in self._open():
            if clip_id in fh:
                g = fh[clip_id]
                return ClipMedia(
                    audio=g["audio"][()] if audio else np.zeros(0, np.int16),
                    sample_rate=int(g["audio"].attrs["sample_rate"]),
                    frames=[bytes(f) for f in g["frames"][()]] if frames else [],
                    frame_times=g["frame_times"][()], attrs=dict(g.attrs))
        raise KeyError(f"clip {clip_id!r} is not in {self.shard_file}")

    def close(self) -> None:
        for fh in self._files or []:
            fh.close()
        self._files = None


def iter_clips(shard_file: Path) -> Iterator[tuple[str, ClipMedia]]:
    with h5py.File(shard_file, "r") as fh:
        for clip_id in fh:
            yield clip_id, _read(fh[clip_id])
