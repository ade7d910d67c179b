"""The yt-dlp options dict, built once per worker from `DownloadConfig` and nothing else.

Nothing from a manifest reaches these options: a clip's id, URL and section travel as
`extra_info` fields of `YoutubeDL.extract_info` (keys starting with `avel_`), read back by
the output template and by the `download_ranges` callback below. So one `YoutubeDL`
per worker serves every clip, and a manifest row can never set a yt-dlp option.

Retries are ours, not yt-dlp's (retries=0): our loop classifies each failure, records it in
the ledger and backs off across workers, which yt-dlp's per-request retries cannot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from yt_dlp.utils import download_range_func

from pipeline.core.config import DownloadConfig

log = logging.getLogger(__name__)

CLIP_FIELD = "avel_clip_id"
SECTION_FIELD = "avel_section"  # (start_s, end_s) in source time, or None for a full download
# Section downloads are a stream copy from the keyframe before the section start. Only MP4's
# edit list can say "the presentation starts later"; WebM/MKV shift the copied GOP to t=0,
# so the file's t=0 is that keyframe, seconds before the section start, and nothing in the
# file says how many. Asking ffmpeg to place the section start at this fixed timestamp
# keeps the answer in the file: the section start is at file time TS_ANCHOR_S in every
# container that stores timestamps, and `source_offset` reads it back. Containers that drop
# it (AVI) are recognised by a start time far below the anchor.
TS_ANCHOR_S = 100000.0

# MP4 stores where each track starts as an edit list in the movie's clock, 1/1000 s unless
# told otherwise: a section whose audio starts between two milliseconds (AAC frames of 1024
# samples rarely start on one) had its audio moved up to 0.5 ms against the video and the
# source (measured: 0.333 ms, 5 samples at 16 kHz, on an AAC track starting at 3.678667 s).
# This clock is the least common multiple of the usual sample rates (8k..48k, 44.1k family)
# and video time bases (12800, 90000, 30000/1001), so any track start is whole ticks.
# Other muxers ignore the option.
MOVIE_TIMESCALE = 141_120_000


def section_ranges(info_dict: dict[str, Any], ydl: Any) -> Iterator[dict[str, Any]]:
    """yt-dlp `download_ranges` callback: this clip's section, or the whole video."""
    section = info_dict.get(SECTION_FIELD)
    if not section:
        yield {}  # what yt-dlp does without download_ranges: the whole video
        return
    yield from download_range_func(None, [tuple(section)])(info_dict, ydl)


def source_offset(section_start_s: float, file_start_s: float) -> float | None:
    """Source time at the file's start (its t=0 for ffmpeg's `-ss`), or None when the file
    lost the anchor. `section_start_s` is 0 for a whole-video download."""
    if file_start_s < TS_ANCHOR_S / 2:
        return None
    return round(section_start_s - (TS_ANCHOR_S - file_start_s), 6)  # ffprobe prints µs


class _Logger:
    """yt-dlp's messages into `logging` (its errors come back to us as exceptions)."""

    def debug(self, msg: str) -> None:
        log.debug(msg)

    def info(self, msg: str) -> None:
        log.debug(msg)

    def warning(self, msg: str) -> None:
        log.info(msg)

    def error(self, msg: str) -> None:
        log.debug(msg)


def build_options(config: DownloadConfig, staging_dir: Path,
                  progress_hook: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Options for one `YoutubeDL` that writes `<staging_dir>/<clip_id>/<clip_id>.<ext>`."""
    template = f"%({CLIP_FIELD})s/%({CLIP_FIELD})s.%(ext)s"
    opts: dict[str, Any] = {
        "outtmpl": {"default": str(Path(staging_dir) / template)},
        "format": config.format,
        "merge_output_format": config.merge_output_format,
        "download_ranges": section_ranges,
        "force_keyframes_at_cuts": config.force_keyframes_at_cuts,
        # yt-dlp's ffmpeg downloader (sections, HLS/DASH): see TS_ANCHOR_S
        "external_downloader_args": {"ffmpeg_o": ["-output_ts_offset", repr(TS_ANCHOR_S),
                                                  "-movie_timescale", str(MOVIE_TIMESCALE)]},
        "socket_timeout": config.socket_timeout_s,
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "noplaylist": True,
        "playlist_items": "1",
        "overwrites": True,
        "continuedl": False,
        "noprogress": True,
        "quiet": True,
        "no_warnings": True,
        "logger": _Logger(),
        "writeinfojson": False,
        "writethumbnail": False,
        "writesubtitles": False,
        "cachedir": False,
        "color": {"stdout": "no_color", "stderr": "no_color"},
    }
    if config.cookies_file:
        opts["cookiefile"] = config.cookies_file
    if config.proxy:
        opts["proxy"] = config.proxy
    if config.rate_limit_bytes:
        opts["ratelimit"] = config.rate_limit_bytes
    if config.sleep_s > 0:  # yt-dlp's --sleep-requests and --sleep-interval
        opts["sleep_interval_requests"] = config.sleep_s
        opts["sleep_interval"] = config.sleep_s
    if config.user_agent:
        opts["http_headers"] = {"User-Agent": config.user_agent}
    if progress_hook is not None:
        opts["progress_hooks"] = [progress_hook]
    return opts
