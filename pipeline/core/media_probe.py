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


def probe(path: str | Path, timeout_s: float = 60.0) -> MediaInfo:
    """Probe `path`; raise MediaError('empty-file' | 'not-media' | 'no-streams') when unusable."""
    path = Path(path)
    if not path.is_file():
        raise MediaError("missing-file", str(path))
    if path.stat().st_size == 0:
        raise MediaError("empty-file", str(path))
    try:
        data = ffmpeg.probe(str(path), timeout=timeout_s)
    except ffmpeg.Error as exc:
        message = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise MediaError("not-media", message[-1] if message else "ffprobe failed") from None
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
    duration = float(fmt.get("duration") or 0.0)
    if not duration:
        duration = max(float((s or {}).get("duration") or 0.0) for s in (video, audio))
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
    )
