"""Fetch one clip: yt-dlp (or a link/copy of a local file) into a staging folder, verify it
with ffprobe, then move it into `raw/<shard>/<clip_id>.<ext>` with one atomic rename.

The staging folder (`raw/.staging/<shard>/<clip_id>/`) holds yt-dlp's `.part` files and
merge intermediates; it is emptied before each attempt and removed by the stage, so the
shard's output folder only ever holds complete, verified files. A file is renamed into
place only after it passed the probe, which is why the stage may adopt a final file that a
killed run left without a ledger entry.

The ledger's `offset_s` (source time at the file's start, the cut's contract) is read
back from the file: a section is a stream copy from the keyframe before its start, and
yt-dlp's ffmpeg places the section start at a fixed timestamp (ytdlp_options.TS_ANCHOR_S).
A section that cannot be kept exact (a container without timestamps such as AVI, a server
without Range requests, a file ffmpeg cannot cut) is fetched whole instead, with a note,
so it is right or fails for the reason full mode would give.

The probe itself goes into the ledger too (core/carried_probe), with the clip's video
packet times when the cut keeps native frames: the cut then starts no ffprobe of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yt_dlp

from pipeline.core import carried_probe
from pipeline.core.media_probe import MediaError, MediaInfo, packet_interval, probe_listing
from pipeline.core.workdir import Workdir
from pipeline.download.failures import PERMANENT, TRANSIENT, Failure, classify
from pipeline.download.jobs import FULL, SECTION, ClipJob, local_suffix
from pipeline.download.section_audio_shift import audio_shift_s
from pipeline.download.ytdlp_options import CLIP_FIELD, SECTION_FIELD, WarningLog, source_offset

log = logging.getLogger(__name__)

TEMP_SUFFIXES = (".part", ".ytdl", ".temp", ".tmp")
# section failures that say "ffmpeg could not cut this source", not "this source is gone"
SECTION_FALLBACK_REASONS = {"ffmpeg-failed", "unknown"}


@dataclass
class Outcome:
    clip_id: str
    info: dict[str, Any] | None = None  # ledger info when done
    checksum: str | None = None
    failure: Failure | None = None
    adopted: bool = False  # a verified file from a killed run, nothing fetched
    cancelled: bool = False  # the stage stopped before this clip began
    pause_s: float = 0.0  # when throttled: the pause its identity now takes
    identity: str | None = None  # the identity (download.identities) that sent the request
    bytes: int = 0


@dataclass
class ByteCounter:
    """Bytes received so far by all workers (from yt-dlp's progress hooks)."""

    total: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: dict[str, int] = field(default_factory=dict)

    def hook(self, d: dict[str, Any]) -> None:
        name = str(d.get("tmpfilename") or d.get("filename") or "")
        now = int(d.get("downloaded_bytes") or 0)
        with self._lock:
            self.total += max(0, now - self._seen.get(name, 0))
            self._seen[name] = now
            if d.get("status") in ("finished", "error"):
                self._seen.pop(name, None)


def finished_files(raw_dir: Path) -> dict[str, str]:
    """clip_id → file name of every finished file in `raw_dir`, read once per run (a
    lookup per clip instead of a directory scan per clip)."""
    if not raw_dir.is_dir():
        return {}
    out = {}
    for entry in os.scandir(raw_dir):
        stem, dot, ext = entry.name.rpartition(".")
        if dot and stem and ext and not entry.name.startswith(".") and entry.is_file():
            out[stem] = entry.name
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Fetcher:
    """One per worker thread (a `YoutubeDL` object is not thread-safe)."""

    def __init__(self, wd: Workdir, raw_dir: Path, staging_dir: Path,
                 ydl_options: dict[str, Any], finished: dict[str, str] | None = None,
                 local_files: str = "hardlink", list_packets: bool = False) -> None:
        self.wd = wd
        self.local_files = local_files  # DownloadConfig.local_files
        # the cut keeps native frames (ave-vgg19): its probe lists the clip's video packets,
        # so ours does, and the cut takes both from the ledger (core/carried_probe)
        self.list_packets = list_packets
        self.finished = finished if finished is not None else finished_files(raw_dir)
        self.raw_dir = raw_dir
        self.staging_dir = staging_dir
        self._options = ydl_options
        self._ydl: Any = None

    def close(self) -> None:
        if self._ydl is not None:
            self._ydl.close()
            self._ydl = None

    def adopt(self, job: ClipJob) -> Outcome | None:
        """A verified final file already in place (a run killed before its ledger write)."""
        name = self.finished.get(job.clip_id)
        if name is None:
            return None
        existing = self.wd.clip_path(self.raw_dir, job.clip_id, name[len(job.clip_id):])
        if not existing.is_file():
            return None
        try:
            media, listing = probe_listing(existing, self._listing(job))
        except MediaError:
            existing.unlink(missing_ok=True)  # cannot happen through us; refetch it
            return None
        return self._done(job, existing, media, adopted=True, listing=listing)

    def fetch(self, job: ClipJob) -> Outcome:
        """Fetch, verify and commit one clip; every failure comes back classified."""
        work = self.wd.clip_path(self.staging_dir, job.clip_id)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        try:
            if job.kind == "bad":
                return Outcome(job.clip_id, failure=Failure(PERMANENT, "bad-source", job.target))
            inputs = 1  # formats yt-dlp's ffmpeg combined into the file
            if job.kind == "local":
                got = self._link_local(job, work)
            else:
                got, inputs = self._download(job, work)
            fetched = self._verify(job, got)
            note = None
            if job.mode == SECTION and isinstance(fetched, str):
                # The section could not be cut exactly (a container without timestamps, a
                # server without Range requests, a file ffmpeg cannot seek in): fetch the
                # whole video, so the clip is right or fails for the same reason it would
                # in full mode.
                note = fetched
                log.info("%s: %s; fetching the whole video", job.clip_id, note)
                if isinstance(got, Path):
                    got.unlink(missing_ok=True)
                job = dataclasses.replace(job, mode=FULL, section=None)
                got, inputs = self._download(job, work)
                fetched = self._verify(job, got)
            if isinstance(fetched, Failure):
                return Outcome(job.clip_id, failure=fetched)
            if isinstance(fetched, str):  # not a section: cannot happen, kept for the types
                return Outcome(job.clip_id, failure=Failure(TRANSIENT, "unknown", fetched))
            media, offset, listing = fetched
            assert isinstance(got, Path)
            final = self.wd.clip_path(self.raw_dir, job.clip_id, got.suffix.lower())
            older = self.finished.get(job.clip_id)
            if older and older != final.name:  # a different extension from an older run
                (self.raw_dir / older).unlink(missing_ok=True)
            with open(got, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(got, final)
            _fsync_dir(self.raw_dir)
            # a section copied from one input through an old Matroska muxer has its audio
            # early against the file the full download would be (section_audio_shift)
            shift = audio_shift_s(final) if job.mode == SECTION and inputs == 1 else 0.0
            return self._done(job, final, media, adopted=False, offset_s=offset, note=note,
                              audio_shift_s=shift, listing=listing)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _verify(self, job: ClipJob, got: Path | Failure
                ) -> tuple[MediaInfo, float, str | None] | Failure | str:
        """(probe, source offset, the probe's packet listing) of a fetched file; a Failure;
        or, for a section that is not usable as one, why (the caller then fetches the whole
        video)."""
        if isinstance(got, Failure):
            if job.mode == SECTION and got.reason in SECTION_FALLBACK_REASONS:
                return f"section download failed ({got.reason}: {got.detail[-200:]})"
            return got
        try:
            media, listing = probe_listing(got, self._listing(job))
        except MediaError as exc:
            if job.mode == SECTION:
                return (f"section file unusable ({exc.reason}; what a server without Range "
                        "requests gives for an mp4 whose index is at its end)")
            return Failure(PERMANENT, exc.reason, str(exc))
        offset, why = self._offset(job, media)
        return why if offset is None else (media, offset, listing)

    def _listing(self, job: ClipJob) -> str | None:
        """The cut's packet listing, placed before the probe tells the file's offset: the
        clip's seconds from the section start (a section file begins at or before it, at the
        keyframe the copy started from, so the listing starts early enough) or from the
        source's start. carried_probe.record keeps only what covers the clip's true place."""
        if not self.list_packets or job.clip is None:
            return None
        start, end = job.clip
        if not (math.isfinite(start) and math.isfinite(end) and end > start):
            return None
        return packet_interval(max(start - job.offset_s, 0.0), end - start)

    @staticmethod
    def _offset(job: ClipJob, media: MediaInfo) -> tuple[float | None, str | None]:
        """(source time at the file's start, a note for the ledger). A file yt-dlp's ffmpeg
        wrote carries the anchor (ytdlp_options.TS_ANCHOR_S); a plain HTTP download or a
        local file is the source itself, whose start is the source's own start."""
        anchored = source_offset(job.offset_s, media.start_s)
        if anchored is not None:
            return anchored, None
        if job.mode == SECTION:
            return None, (f"section lost its start timestamp in {media.format_name} "
                          f"(start {media.start_s:.3f} s)")
        return 0.0, None

    # -- sources ------------------------------------------------------------
    def _link_local(self, job: ClipJob, work: Path) -> Path | Failure:
        source = self.wd.root / job.target  # relative: inside the work directory
        if not source.is_file():
            return Failure(PERMANENT, "missing-file", f"no such local file: {source}")
        dest = self.wd.clip_path(work, job.clip_id, local_suffix(job.target))
        how = self.local_files
        if how == "symlink":
            os.symlink(source.resolve(), dest)
            return dest
        if how == "hardlink":
            try:
                os.link(source, dest)  # free and instant on the same filesystem
                return dest
            except OSError:
                pass  # another filesystem: copy
        shutil.copyfile(source, dest)
        return dest

    def _download(self, job: ClipJob, work: Path) -> tuple[Path | Failure, int]:
        """(the file or a failure, how many formats yt-dlp combined into it)."""
        if self._ydl is None:
            self._ydl = yt_dlp.YoutubeDL(self._options)
        extra = {CLIP_FIELD: job.clip_id, SECTION_FIELD: list(job.section) if job.section else None}
        warnings = self._options.get("logger")
        if isinstance(warnings, WarningLog):
            warnings.take()  # a previous attempt's, already judged
        try:
            info = self._ydl.extract_info(job.target, download=True, extra_info=extra)
        except Exception as exc:  # every yt-dlp failure is classified, none escapes
            # with the warnings of this attempt: YouTube's broken-setup signs come only there
            return classify(exc, warnings.take() if isinstance(warnings, WarningLog) else ()), 1
        path = _downloaded_file(info, work, job.clip_id)
        if path is None:
            return Failure(TRANSIENT, "no-output", "yt-dlp reported success but wrote no file"), 1
        return path, max(len((info or {}).get("requested_formats") or ()), 1)

    def _done(self, job: ClipJob, final: Path, media: MediaInfo, *, adopted: bool,
              offset_s: float | None = None, note: str | None = None,
              audio_shift_s: float = 0.0, listing: str | None = None) -> Outcome:
        size = final.stat().st_size
        if offset_s is None:
            offset_s = self._offset(job, media)[0]
            if offset_s is None:  # an adopted section file without its anchor
                offset_s = job.offset_s
        info = {
            "file": final.relative_to(self.wd.root).as_posix(),
            "offset_s": offset_s,
            "mode": job.mode,
            "duration_s": media.duration_s,
            "has_audio": media.has_audio,
            "has_video": media.has_video,
            "section": list(job.section) if job.section else None,
            "bytes": size,
            "format_name": media.format_name,
            "width": media.width,
            "height": media.height,
        }
        if note:
            info["note"] = f"{note}; fetched the whole video instead"
        if audio_shift_s:  # the cut reads the audio this much earlier than the video
            info["audio_shift_s"] = audio_shift_s
        # the probe, for the cut to use instead of its own while the file stays this one
        span = None if job.clip is None else (job.clip[0] - offset_s, job.clip[1] - offset_s)
        info[carried_probe.KEY] = carried_probe.record(media, final, listing=listing, span=span)
        return Outcome(job.clip_id, info=info, checksum=f"sha256:{sha256(final)}",
                       adopted=adopted, bytes=0 if adopted else size)


def _downloaded_file(info: dict[str, Any] | None, work: Path, clip_id: str) -> Path | None:
    """yt-dlp's final file for this clip: from its report, else the one file left in `work`."""
    entries = [info] if info else []
    while entries:
        item = entries.pop(0)
        for req in item.get("requested_downloads") or []:
            path = Path(req.get("filepath") or "")
            if path.is_file() and path.parent == work:
                return path
        entries += [e for e in item.get("entries") or [] if e]
    candidates = [p for p in work.iterdir()
                  if p.is_file() and p.name.startswith(f"{clip_id}.")
                  and not p.name.endswith(TEMP_SUFFIXES)]
    return candidates[0] if len(candidates) == 1 else None


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
