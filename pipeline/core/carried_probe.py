"""A probe carried from download to cut, so each file is probed once.

The download stage probes every file it commits; it records that probe in the download
ledger entry's info (`info["probe"]`), and the cut uses it instead of starting an ffprobe
of its own. Nothing read from the ledger is trusted beyond that: the cut takes the record
only while the file is the one probed (same size, mtime_ns and inode as at download), and
only when every field parses to its type; otherwise it probes the file as it always did.

For recipes that keep native frames (ave-vgg19, also VGGSound-AVEL's 101,072 clips) the
record also holds the presentation times of the video packets around the clip, listed by
the same ffprobe call, and the file times they are complete for. They are kept compact:
ffprobe prints times in whole microseconds, so the first time and the steps between them
are integers of microseconds (~6 characters a frame, ~2 KB for a 10-s clip at 30 fps,
against ~14 for a float) that give back exactly the floats ffprobe printed. Rate-based
recipes (llp-8fps, uniform-N) record no times.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.media_probe import MediaInfo

KEY = "probe"  # the download ledger info key
# what the record keeps around the clip: from this long before its start to this long
# after its end (a file ending just after the clip is decoded whole: its times to the end)
MARGIN_S, TAIL_S = 0.5, 1.0
# a listing whose last packet is this close to the file's end read the file to its end
END_SLACK_S = 0.5
_CARRIED = tuple(f.name for f in dataclasses.fields(MediaInfo)
                 if f.name not in ("path", "video_pts"))
_TYPES = {f.name: f.type for f in dataclasses.fields(MediaInfo)}


@dataclass(frozen=True)
class CarriedProbe:
    media: MediaInfo  # video_pts None: ask `video_pts` for the clip's listing
    pts: tuple[float, ...] | None  # listed packet times (file clock), complete on the window
    from_s: float = 0.0  # the window: every listed packet time in [from_s, to_s] is in pts
    to_s: float = 0.0
    to_end: bool = False  # pts run to the file's last packet

    def video_pts(self, lo_s: float, hi_s: float | None) -> tuple[float, ...] | None:
        """The recorded packet times when they cover file times [lo_s, hi_s) (hi_s None:
        to the file's end) like the cut's own listing would; else None."""
        if self.pts is None or self.from_s > lo_s + 1e-9:
            return None
        if self.to_end or (hi_s is not None and hi_s <= self.to_s + 1e-9):
            return self.pts
        return None


def record(media: MediaInfo, path: Path, *, listing: str | None = None,
           span: tuple[float, float] | None = None) -> dict[str, Any]:
    """What the download keeps of its probe of `path` (the committed file).

    `listing`: the `-read_intervals` the probe listed packets with (its `video_pts`);
    `span`: the clip in seconds from the file's t=0, now that the offset is known. Times
    are kept only with both, and only for the window around the clip."""
    st = os.stat(path)
    out: dict[str, Any] = {
        "file": {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino},
        "media": {name: getattr(media, name) for name in _CARRIED},
    }
    if listing is not None and span is not None and media.video_pts:
        window = _window(media, listing, span)
        if window is not None:
            out["video_pts"] = window
    return out


def _window(media: MediaInfo, listing: str, span: tuple[float, float]) -> dict[str, Any] | None:
    pts = media.video_pts or ()
    seek = span[0] if span[0] > 1e-6 else 0.0  # the cut's own rule (clip._cut)
    want_lo = media.start_s + seek - MARGIN_S
    want_hi = media.start_s + span[1] + TAIL_S
    # a listing without `+START` began at the file's first packet; one with it at the
    # keyframe its seek landed on, the first packet listed
    complete_from = -math.inf if listing.startswith("%") else pts[0]
    from_s = max(want_lo, complete_from)
    last = pts[-1]
    to_s = min(last, want_hi)
    kept = [t for t in pts if from_s <= t <= to_s]
    micro = [round(t * 1e6) for t in kept]
    if not kept or any(m / 1e6 != t for m, t in zip(micro, kept)):
        return None  # not times as ffprobe prints them: let the cut list them itself
    to_end = last <= want_hi and last + END_SLACK_S >= media.start_s + media.duration_s
    return {"from_s": from_s, "to_s": to_s, "to_end": to_end, "first_us": micro[0],
            "steps_us": [b - a for a, b in zip(micro, micro[1:])]}


def reuse(recorded: Any, path: Path) -> CarriedProbe | None:
    """The download's probe of `path`, when `recorded` is one and the file is still the
    one it probed; None means: probe the file."""
    if not isinstance(recorded, dict):
        return None
    try:
        stamp = recorded["file"]
        st = os.stat(path)
        if (stamp["size"], stamp["mtime_ns"], stamp["inode"]) != (
                st.st_size, st.st_mtime_ns, st.st_ino):
            return None
        media = _media(recorded["media"], path)
        times = recorded.get("video_pts")
        if times is None:
            return CarriedProbe(media, None)
        return _with_times(media, times)
    except (KeyError, TypeError, ValueError, OSError):
        return None


def _media(fields: Any, path: Path) -> MediaInfo:
    if not isinstance(fields, dict) or set(fields) != set(_CARRIED):
        raise ValueError("not the fields of this version's MediaInfo")
    values: dict[str, Any] = {}
    for name, value in fields.items():
        kind = _TYPES[name]
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = _integer(value)
        elif kind == "float":
            ok, value = _number(value), float(value) if _number(value) else value
        else:
            ok = isinstance(value, str)
        if not ok:
            raise ValueError(f"{name}: {value!r}")
        values[name] = value
    return MediaInfo(path=str(path), **values)


def _with_times(media: MediaInfo, times: Any) -> CarriedProbe:
    if not isinstance(times, dict) or not isinstance(times.get("to_end"), bool):
        raise ValueError("video_pts")
    first, steps, from_s, to_s = times["first_us"], times["steps_us"], times["from_s"], times["to_s"]
    if not (_integer(first) and abs(first) < 2**52 and isinstance(steps, list)
            and len(steps) < 1_000_000 and all(_integer(d) and 0 < d < 2**40 for d in steps)
            and _number(from_s) and _number(to_s)):
        raise ValueError("video_pts")
    micro = list(itertools.accumulate(steps, initial=first))
    if abs(micro[-1]) >= 2**52:
        raise ValueError("video_pts")
    return CarriedProbe(media, tuple(m / 1e6 for m in micro), float(from_s), float(to_s),
                        times["to_end"])


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))
