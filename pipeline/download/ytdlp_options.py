"""The yt-dlp options dict, built once per worker from `DownloadConfig` and nothing else.

Nothing from a manifest reaches these options: a clip's id, URL and section travel as
`extra_info` fields of `YoutubeDL.extract_info` (keys starting with `avel_`), read back by
the output template and by the `download_ranges` callback below. So one `YoutubeDL`
per worker serves every clip, and a manifest row can never set a yt-dlp option.

YouTube needs a JavaScript runtime for its player challenges (js_runtime.py): the one found
is named here by path. yt-dlp's warnings are kept per attempt (WarningLog), because YouTube
reports a broken setup only as warnings before an error that blames the clip.

Retries are ours, not yt-dlp's (retries=0): our loop classifies each failure, records it in
the ledger and backs off across workers, which yt-dlp's per-request retries cannot.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from yt_dlp.utils import download_range_func

from pipeline.core.config import DownloadConfig
from pipeline.download.js_runtime import find_js_runtime, ytdlp_js_options

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


class WarningLog:
    """yt-dlp's messages into `logging`, and its warnings kept for the attempt's verdict.

    YouTube's environment problems (no JS runtime, an unsolved challenge, only images left)
    reach us only as warnings before an error that blames the clip; the fetcher takes them
    after each attempt and `failures.classify` reads them. One per `YoutubeDL`, so one per
    worker thread: no lock needed. Its errors come back to us as exceptions.
    """

    def __init__(self) -> None:
        self._warnings: list[str] = []

    def take(self) -> list[str]:
        """The warnings since the last call (the current attempt's), and forget them."""
        taken, self._warnings = self._warnings, []
        return taken

    def debug(self, msg: str) -> None:
        log.debug(msg)

    def info(self, msg: str) -> None:
        log.debug(msg)

    def warning(self, msg: str) -> None:
        self._warnings.append(msg)
        log.info(msg)

    def error(self, msg: str) -> None:
        log.debug(msg)


_js_runtime = functools.cache(find_js_runtime)  # one `--version` probe per process


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
        "external_downloader_args": {"ffmpeg_o": ["-output_ts_offset", repr(TS_ANCHOR_S)]},
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
        "no_warnings": False,  # warnings go to the logger, which keeps them (WarningLog)
        "logger": WarningLog(),
        "writeinfojson": False,
        "writethumbnail": False,
        "writesubtitles": False,
        # player JS and solved challenges, shared by all workers (checked_download_config
        # made the path absolute); yt-dlp writes each entry by an atomic rename
        "cachedir": config.cache_dir or False,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        # YouTube's n/sig challenges: the runtime by path, so a venv works with an empty PATH
        **ytdlp_js_options(_js_runtime()),
    }
    if config.cookies_file:
        opts["cookiefile"] = config.cookies_file
    if config.proxy is not None:  # "" = a direct connection (an identity without proxy)
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
