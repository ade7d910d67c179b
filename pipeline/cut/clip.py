"""Cut one clip: probe (or take the download's probe of the same file), classify, decode
audio and frames, and hand back the result.

Runs inside a worker process, so it only reads the input file and (in loose mode) writes
that clip's own loose files; the shard's HDF5 file and ledger belong to the parent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from pipeline.core import atomic
from pipeline.core.carried_probe import reuse
from pipeline.core.media_probe import MediaError, MediaInfo, packet_interval, probe_listing
from pipeline.core.workdir import Workdir
from pipeline.cut.audio import audio_output, finish_audio
from pipeline.cut.checks import Span, conditions, verdict
from pipeline.cut.ffmpeg_pipes import DecodeError, clip_input, compile_args, run
from pipeline.cut.frames import (
    clip_frame_times,
    finish_frames,
    frames_output,
    listed_frame_times,
    planned_pick,
)
from pipeline.cut.recipes import audio_recipe, frames_recipe
from pipeline.store.clips import ClipMedia


@dataclass(frozen=True)
class CutSettings:
    audio_recipe: str
    frames_recipe: str
    jpeg_quality: int | None
    scale: str | None
    allow: tuple[str, ...]
    max_pixels: int
    max_pad_s: float
    span_slack_s: float
    timeout_s: float
    ffmpeg_version: str
    ffmpeg_threads: int | None = None  # ffmpeg -threads per call (None: ffmpeg's default)
    select_in_graph: bool = True  # False: encode every frame and select after (the baseline)


@dataclass(frozen=True)
class CutTask:
    clip_id: str
    path: str  # absolute path of the input file
    source_file: str  # as recorded (relative to the workdir where possible)
    span: Span  # seconds in the file
    loose_root: str | None = None  # write the original layout here instead of returning media
    audio_shift_s: float = 0.0  # the file's audio timestamps are this early (download ledger)
    probe: dict[str, Any] | None = None  # the download's probe of the file (carried_probe)


@dataclass
class CutResult:
    clip_id: str
    media: ClipMedia | None = None
    reason: str | None = None  # set when the clip failed
    detail: str = ""
    notes: list[str] = field(default_factory=list)
    checksum: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def checksum(audio: np.ndarray, jpegs: list[bytes]) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(audio).tobytes())
    for jpeg in jpegs:
        digest.update(len(jpeg).to_bytes(8, "little"))
        digest.update(jpeg)
    return digest.hexdigest()


def cut_clip(task: CutTask, settings: CutSettings) -> CutResult:
    """Never raises: every failure comes back as a ledger reason."""
    try:
        return _cut(task, settings)
    except MediaError as exc:
        return CutResult(task.clip_id, reason=exc.reason, detail=exc.detail)
    except DecodeError as exc:
        return CutResult(task.clip_id, reason=exc.reason, detail=exc.detail)
    except Exception as exc:  # a bug or an unforeseen file must not stop the shard
        detail = "".join(traceback.format_exception(exc))[-1500:]
        return CutResult(task.clip_id, reason="internal-error", detail=detail)


def _cut(task: CutTask, s: CutSettings) -> CutResult:
    path = Path(task.path)
    span = task.span
    f_recipe = frames_recipe(s.frames_recipe)  # the config checked both recipe names
    seek = span.start_s if span.start_s > 1e-6 else 0.0
    # the download's probe of this very file, when it recorded one (carried_probe)
    carried = reuse(task.probe, path)
    if carried is not None:
        info = carried.media
    else:
        info = _probe(path, s, seek, span, native=f_recipe.rate is None)
    fatal, notes = verdict(conditions(path, info, span, max_pixels=s.max_pixels,
                                      max_pad_s=s.max_pad_s), list(s.allow))
    if fatal:
        return CutResult(task.clip_id, reason=fatal[0], detail=fatal[1])
    # a file ending within the slack after the clip is decoded whole, as the originals did
    duration = None if info.duration_s - span.end_s <= s.span_slack_s else span.duration_s
    seconds = max(int(round(span.duration_s)), 1)
    times = pick = None
    if f_recipe.rate is None and info.has_video:  # native frames: known before decoding
        listed = info
        if carried is not None:
            lo = info.start_s + seek
            listed = replace(info, video_pts=carried.video_pts(
                lo, None if duration is None else lo + duration))
        times = listed_frame_times(listed, seek_s=seek, duration_s=duration)
        if times is None:
            times = clip_frame_times(path, file_start_s=info.start_s, seek_s=seek,
                                     duration_s=duration, timeout_s=s.timeout_s)
        if task.loose_root is None and len(times) and s.select_in_graph:  # loose keeps all
            pick = planned_pick(f_recipe, times, seconds)[1]
    try:
        audio, frames, args = _decode(path, info, s, seek, duration, span, seconds, times, pick,
                                      task.audio_shift_s)
    except DecodeError as exc:
        if exc.reason != "frame-count-mismatch":
            raise
        # the packets and the decoder disagree (a damaged stream): encode every frame
        audio, frames, args = _decode(path, info, s, seek, duration, span, seconds, None, None,
                                      task.audio_shift_s)
        notes, times = [*notes, "frame-times-from-rate"], None
    available = min(info.duration_s, span.end_s) - span.start_s - s.max_pad_s
    if audio.decoded < available * audio.sample_rate:
        return CutResult(task.clip_id, reason="truncated",
                         detail=f"decoded {audio.decoded} audio samples, the header promises "
                                f"{int(available * audio.sample_rate)}+")
    fps = f_recipe.rate or info.avg_frame_rate or info.r_frame_rate
    if times is not None and len(times) > 1 and not f_recipe.rate:
        # real times: the last frame's time plus one typical interval covers the clip
        covered = float(times[-1] + np.median(np.diff(times)))
        short = covered < available - 1e-6
    else:
        short = frames.decoded < available * fps
    if short:
        return CutResult(task.clip_id, reason="truncated",
                         detail=f"decoded {frames.decoded} frames, the header promises "
                                f"{int(available * fps)}+")
    attrs: dict[str, Any] = {
        "recipe": f"{s.audio_recipe}+{s.frames_recipe}",
        "audio_recipe": s.audio_recipe, "frames_recipe": s.frames_recipe,
        "ffmpeg_args": args,
        "ffmpeg_version": s.ffmpeg_version,
        "audio_padded": audio.padded, "audio_trimmed": audio.trimmed,
        "decoded_frames": frames.decoded,
        "jpeg_quality": "ffmpeg-default" if s.jpeg_quality is None else s.jpeg_quality,
        "scale": s.scale or "source",
        "source_file": task.source_file, "span_start_s": span.start_s, "span_end_s": span.end_s,
        "notes": notes,
    }
    digest = checksum(audio.samples, frames.jpegs)
    info_out = {"audio_padded": audio.padded, "audio_trimmed": audio.trimmed,
                "frames": len(frames.jpegs), "decoded_frames": frames.decoded, "notes": notes}
    if task.loose_root is not None:
        write_loose(Path(task.loose_root), task.clip_id, audio.samples, audio.sample_rate,
                    frames.all_jpegs)
        return CutResult(task.clip_id, notes=notes, checksum=digest, info=info_out)
    media = ClipMedia(audio=audio.samples, sample_rate=audio.sample_rate, frames=frames.jpegs,
                      frame_times=frames.times, attrs=attrs)
    return CutResult(task.clip_id, media=media, notes=notes, checksum=digest, info=info_out)


def _probe(path: Path, s: CutSettings, seek: float, span: Span, *, native: bool) -> MediaInfo:
    """Probe the file; native-frame recipes list the clip's video packets in the same
    ffprobe process (a listing that fails leaves them to the separate packet pass)."""
    listing = packet_interval(seek, span.duration_s) if native else None
    return probe_listing(path, listing, timeout_s=s.timeout_s)[0]


def _decode(path: Path, info: Any, s: CutSettings, seek: float, duration: float | None,
            span: Span, seconds: int, times: np.ndarray | None, pick: np.ndarray | None,
            audio_shift_s: float = 0.0) -> tuple[Any, Any, list[str]]:
    """One ffmpeg call: the input is opened and seeked once, audio on pipe:1, JPEGs on
    pipe:3 (only the picked frames when `pick` is given). A file whose audio timestamps are
    `audio_shift_s` early is opened a second time for the audio, seeked that much earlier."""
    a_recipe, f_recipe = audio_recipe(s.audio_recipe), frames_recipe(s.frames_recipe)
    source = clip_input(path, seek, duration, s.ffmpeg_threads)
    audio_source = source
    if audio_shift_s:
        audio_source = clip_input(path, max(seek - audio_shift_s, 0.0), duration, s.ffmpeg_threads)
    args = compile_args(
        audio_output(audio_source, a_recipe, "pipe:1", native_rate=info.sample_rate,
                     native_channels=info.channels),
        frames_output(source, f_recipe, "pipe:3", jpeg_quality=s.jpeg_quality, scale=s.scale,
                      pick_times=None if pick is None or times is None else times[pick],
                      threads=s.ffmpeg_threads))
    pcm, jpeg_stream = run(args, s.timeout_s)
    audio = finish_audio(pcm, a_recipe, clip_duration_s=span.duration_s,
                         native_rate=info.sample_rate, native_channels=info.channels, args=args)
    frames = finish_frames(jpeg_stream, f_recipe, clip_seconds=seconds,
                           native_fps=info.avg_frame_rate or info.r_frame_rate, args=args,
                           times=times, picked=pick)
    return audio, frames, args


def write_loose(root: Path, clip_id: str, audio: np.ndarray, sample_rate: int,
                jpegs: list[bytes]) -> None:
    """The original scripts' layout: every decoded frame as frames/<clip_id>/%06d.jpg (their
    own selection runs on it) and audio/<clip_id>.wav; each clip appears whole or not at all."""
    wd = Workdir(root.parents[1])  # root is <workdir>/clips/loose
    frames_dir, audio_dir = root / "frames", root / "audio"
    target, wav = wd.clip_path(frames_dir, clip_id), wd.clip_path(audio_dir, clip_id, ".wav")
    frames_dir.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{clip_id}.", suffix=".tmp", dir=frames_dir))
    for i, jpeg in enumerate(jpegs, start=1):
        (temp / f"{i:06d}.jpg").write_bytes(jpeg)
    if target.exists():
        shutil.rmtree(target)
    os.chmod(temp, 0o755)
    os.replace(temp, target)
    with atomic.atomic_path(wav) as tmp:
        sf.write(str(tmp), audio, sample_rate, subtype="PCM_16", format="WAV")
