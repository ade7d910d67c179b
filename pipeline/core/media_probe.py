"""What a media file holds, read with ffprobe (through ffmpeg-python), in one place.

Download verifies files with it and cut classifies bad media with it; both record the
`reason` of a `MediaError` in their ledgers, so the same defect has the same name everywhere.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

TEXT_FORMATS = {"tty", "bin", "xbin", "adf", "idf", "srt", "webvtt", "ass", "subviewer", "lrc"}


class MediaError(Exception):
    """A file that is not usable media; `reason` is a short stable ledger key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# containers whose header duration is the end time: measured from 0, not from the start
HEADER_DURATION_FROM_ZERO = ("mov,mp4", "matroska")


@dataclass(frozen=True)
class MediaInfo:
    path: str
    format_name: str
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    pix_fmt: str = ""
    video_codec: str = ""
    r_frame_rate: float = 0.0  # the container's nominal rate
    avg_frame_rate: float = 0.0  # frames / duration
    n_frames: int = 0  # from the stream header, 0 when unknown
    rotation: int = 0  # degrees, from the display matrix or the rotate tag
    audio_codec: str = ""
    sample_rate: int = 0
    channels: int = 0
    start_s: float = 0.0  # the container's start time: where ffmpeg's `-ss 0` lies
    # presentation times (s, file clock, sorted, distinct) of the video packets ffprobe read
    # in `probe(..., video_packets=interval)`; None when not asked for
    video_pts: tuple[float, ...] | None = None

    @property
    def variable_frame_rate(self) -> bool:
        """ffprobe's nominal and average rates disagree by more than 1%."""
        if not self.has_video or not self.r_frame_rate or not self.avg_frame_rate:
            return False
        return abs(self.r_frame_rate - self.avg_frame_rate) / self.r_frame_rate > 0.01


def _rate(text: str | None) -> float:
    if not text or text in ("0/0", "N/A"):
        return 0.0
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return 0.0


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return int(tag) % 360 if tag and tag.lstrip("-").isdigit() else 0


def probe(path: str | Path, timeout_s: float = 60.0, video_packets: str | None = None
          ) -> MediaInfo:
    """Probe `path`; raise MediaError('empty-file' | 'not-media' | 'no-streams') when unusable.

    `video_packets`: an ffprobe `-read_intervals` value; the presentation times of the video
    packets in it come back as `video_pts`, from the same ffprobe process (each process start
    costs ~0.07 s of CPU with a distribution's shared-library ffmpeg, as much as the listing)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError("missing-file", str(path))
    if path.stat().st_size == 0:
        raise MediaError("empty-file", str(path))
    extra: dict[str, str] = {}
    if video_packets is not None:
        extra = {"show_entries": "packet=stream_index,pts_time,dts_time",
                 "read_intervals": video_packets}
    try:
        data = ffmpeg.probe(str(path), timeout=timeout_s, **extra)
    except ffmpeg.Error as exc:
        message = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else "ffprobe failed"
        if _iso_boxes_cut_off(path):  # the same name in download and cut, any mode
            raise MediaError("truncated", f"{detail}; the mp4 box structure runs past the end "
                                          "of the file") from None
        raise MediaError("not-media", detail) from None
    except subprocess.TimeoutExpired:
        raise MediaError("probe-timeout", f"ffprobe took over {timeout_s} s") from None
    except json.JSONDecodeError:
        raise MediaError("not-media", "ffprobe returned no data") from None
    fmt = data.get("format", {})
    if fmt.get("format_name", "") in TEXT_FORMATS:
        # ffprobe happily reads any text file (an HTML error page, a CSV) as ANSI "video"
        raise MediaError("not-media", f"text, not media (ffprobe format {fmt.get('format_name')})")
    if fmt.get("format_name", "").endswith("_pipe") or fmt.get("format_name") == "image2":
        raise MediaError("not-media", f"a still image ({fmt.get('format_name')}), not a video")
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise MediaError("no-streams", "neither an audio nor a video stream")
    start = _float(fmt.get("start_time"))
    duration = media_length(fmt, [s for s in (video, audio) if s])
    return MediaInfo(
        path=str(path), format_name=fmt.get("format_name", ""), duration_s=duration,
        has_video=video is not None, has_audio=audio is not None,
        width=int((video or {}).get("width") or 0), height=int((video or {}).get("height") or 0),
        pix_fmt=(video or {}).get("pix_fmt", ""), video_codec=(video or {}).get("codec_name", ""),
        r_frame_rate=_rate((video or {}).get("r_frame_rate")),
        avg_frame_rate=_rate((video or {}).get("avg_frame_rate")),
        n_frames=(int((video or {}).get("nb_frames") or 0)
                  if str((video or {}).get("nb_frames", "")).isdigit() else 0),
        rotation=_rotation(video or {}),
        audio_codec=(audio or {}).get("codec_name", ""),
        sample_rate=int((audio or {}).get("sample_rate") or 0),
        channels=int((audio or {}).get("channels") or 0),
        start_s=start,
        video_pts=None if video_packets is None or video is None else _packet_times(
            data.get("packets") or [], int(video.get("index", -1))),
    )


def probe_listing(path: str | Path, listing: str | None, timeout_s: float = 60.0
                  ) -> tuple[MediaInfo, str | None]:
    """`probe`, listing video packets over `listing` when one is given; a file that probes
    only without the listing (its seek is what failed) is classified by the plain probe, so it
    gets the reason a plain probe gives it. Returns the probe and the listing its `video_pts`
    come from (None when it has none). The download and the cut probe through here."""
    if listing is not None:
        try:
            return probe(path, timeout_s, video_packets=listing), listing
        except MediaError:
            pass
    return probe(path, timeout_s), None


# Reading the packets starts 10 s before the clip (ffprobe seeks to the keyframe before that),
# so the cost does not grow with the length of the file before the clip; it ends this long
# after the clip, counted from the keyframe it landed on, which covers GOPs up to 30 s.
LEAD_S, GOP_MARGIN_S = 10.0, 30.0


def packet_interval(seek_s: float, duration_s: float) -> str:
    """ffprobe `-read_intervals` covering a clip's packets, relative to the file's start
    (so it can be asked for in the probe that first reads that start): `+START` is from the
    file's start time, `%+END` from the packet the seek landed on. Without `+START` (a clip
    within LEAD_S of the start) the listing begins at the file's first packet."""
    lead = min(seek_s, LEAD_S)
    start = f"+{seek_s - lead:.6f}" if seek_s > LEAD_S else ""
    return f"{start}%+{lead + duration_s + 1.0 + GOP_MARGIN_S:.6f}"


def _packet_times(packets: list[dict[str, Any]], stream_index: int) -> tuple[float, ...]:
    """Sorted distinct pts (dts where a packet has no pts) of one stream's packets."""
    times = set()
    for packet in packets:
        if packet.get("stream_index") != stream_index:
            continue
        for key in ("pts_time", "dts_time"):
            value = packet.get(key)
            if value not in (None, "N/A"):
                times.add(float(value))
                break
    return tuple(sorted(times))


def media_length(fmt: dict[str, Any], streams: list[dict[str, Any]]) -> float:
    """Seconds from the container's start time to the end of its last stream.

    ffprobe's format `duration` means different things by version: for an MP4 whose first
    timestamp is not 0 (a container start of 3.7 s, a section download's anchor) FFmpeg 5.1
    reports the end time (from t=0), FFmpeg >= 6 the length; Matroska's is the end time in
    both. The streams' own start + duration say the end the same way in every version, so
    they decide for such a file where every stream has both (MP4); otherwise (Matroska,
    whose streams carry no duration) the header, read as an end time. A file starting at 0
    (or earlier) reads the header's duration as every version gives it."""
    start = _float(fmt.get("start_time"))
    duration = _float(fmt.get("duration"))
    if not duration:
        duration = max((_float(s.get("duration")) for s in streams), default=0.0)
    if start > 0 and fmt.get("format_name", "").startswith(HEADER_DURATION_FROM_ZERO):
        ends = [_float(s.get("start_time")) + _float(s.get("duration")) for s in streams
                if _known(s.get("start_time")) and _known(s.get("duration"))]
        if streams and len(ends) == len(streams):
            return max(0.0, max(ends) - start)
        duration = max(0.0, duration - start)
    return duration


def _known(text: object) -> bool:
    return text not in (None, "", "N/A")


def _float(text: object) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


# An ISO-BMFF (mp4, m4a, mov) file whose top-level boxes run past its end was cut off while
# being written (most often before its index, the moov box, so ffprobe finds nothing).
def _iso_boxes_cut_off(path: Path) -> bool:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[4:8] != b"ftyp":
                return False
            pos = 0
            while pos < size:
                fh.seek(pos)
                header = fh.read(16)
                if len(header) < 8:
                    return True
                box = int.from_bytes(header[:4], "big")
                if box == 1 and len(header) == 16:
                    box = int.from_bytes(header[8:16], "big")
                elif box == 0:  # extends to the end of the file
                    return False
                if box < 8:
                    return False  # not a box structure at all: corrupt, not truncated
                pos += box
            return pos > size
    except OSError:
        return False
