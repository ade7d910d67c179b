"""Why a clip's media cannot be cut (or can, with a caveat), decided from ffprobe before
any decoding, so each defect gets one stable ledger reason.

Every condition has a reason name. Fatal ones fail the clip; the ones listed in
`cut.allow` are cut anyway and recorded in the clip's attrs and ledger info as `notes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.media_probe import MediaInfo

# pixel formats every JPEG path handles without surprises; others get a note
COMMON_PIX_FMTS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12"}


@dataclass(frozen=True)
class Span:
    """Where the clip lies in the file: seconds from the file's t=0."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def conditions(path: Path, info: MediaInfo, span: Span, *, max_pixels: int,
               max_pad_s: float) -> list[tuple[str, str]]:
    """All (reason, detail) that apply, most serious first."""
    found: list[tuple[str, str]] = []
    if not info.has_video:
        found.append(("no-video", "audio only"))
    if span.start_s >= info.duration_s:
        found.append(("start-beyond-end",
                      f"clip starts at {span.start_s:.3f} s, file lasts {info.duration_s:.3f} s"))
    elif info.duration_s < span.end_s - max_pad_s:
        found.append(("too-short", f"file lasts {info.duration_s:.3f} s, clip needs up to "
                                   f"{span.end_s:.3f} s (max padding {max_pad_s} s)"))
    if not info.has_audio:
        found.append(("no-audio", "video only"))
    if info.has_video:
        if info.width * info.height > max_pixels:
            found.append(("huge-resolution", f"{info.width}x{info.height} > {max_pixels} pixels"))
        if info.width % 2 or info.height % 2 or min(info.width, info.height) < 16:
            found.append(("odd-size", f"{info.width}x{info.height}"))
        if info.variable_frame_rate:
            found.append(("variable-frame-rate", f"nominal {info.r_frame_rate:.3f} fps, "
                                                 f"average {info.avg_frame_rate:.3f} fps"))
        if info.rotation:
            found.append(("rotated", f"display rotation {info.rotation} degrees"))
        if info.pix_fmt and info.pix_fmt not in COMMON_PIX_FMTS:
            found.append(("unusual-pixel-format", info.pix_fmt))
    if not str(path).isascii():
        found.append(("non-ascii-name", path.name))
    return found


def verdict(found: list[tuple[str, str]], allow: list[str]) -> tuple[tuple[str, str] | None, list[str]]:
    """(the fatal condition or None, notes for the allowed ones)."""
    for reason, detail in found:
        if reason not in allow:
            return (reason, detail), []
    return None, [reason for reason, _ in found]
