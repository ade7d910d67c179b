"""What to fetch for each clip: manifest rows → `ClipJob`s (where from, which section).

A source is one of: a local file (`dataset.source: local`; linked or copied, never
downloaded), an http(s) URL that yt-dlp handles (YouTube watch URLs, or any URL its
generic extractor accepts), or a bare 11-character YouTube id, made into a watch URL.
Anything else (other URL schemes, `ytsearch:` and such, paths when the dataset is not
local) is refused per clip with the permanent reason `bad-source`, so no manifest value
can make yt-dlp search, read local files or take options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.core.config import Config

YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
HTTP_URL = re.compile(r"https?://[^\s]+", re.IGNORECASE)
WATCH_URL = "https://www.youtube.com/watch?v={video_id}"
FULL, SECTION, LOCAL = "full", "section", "local"


@dataclass(frozen=True)
class ClipJob:
    clip_id: str
    kind: str  # "url" | "local" | "bad"
    target: str  # the URL, the local path, or why the source is refused
    mode: str  # FULL | SECTION | LOCAL
    section: tuple[float, float] | None  # source seconds to fetch, None = whole video
    # the clip's source seconds (the manifest's start_s, end_s): where the download's probe
    # lists video packets for the cut (core/carried_probe)
    clip: tuple[float, float] | None = None

    @property
    def offset_s(self) -> float:
        """Source time of the section start (0 for a whole video). The ledger's `offset_s`,
        the cut's contract, is read back from the fetched file (fetch.Fetcher._offset):
        a section file may begin at the keyframe before this."""
        return self.section[0] if self.section else 0.0


def job_for(row: dict, config: Config) -> ClipJob:
    """The job for one manifest row (a dict with clip_id, source, start_s, end_s)."""
    clip_id, source = str(row["clip_id"]), str(row["source"])
    dl = config.download
    clip = (float(row["start_s"]), float(row["end_s"]))
    if config.dataset.source == "local":
        return ClipJob(clip_id, "local", source, LOCAL, None, clip)
    if HTTP_URL.fullmatch(source):
        url = source
    elif YOUTUBE_ID.fullmatch(source):
        url = WATCH_URL.format(video_id=source)
    else:
        return ClipJob(clip_id, "bad", f"not an http(s) URL or a YouTube id: {source!r}",
                       dl.mode, None)
    if dl.mode == SECTION:
        start = max(0.0, clip[0] - dl.pad_s)
        end = clip[1] + dl.pad_s
        return ClipJob(clip_id, "url", url, SECTION, (start, end), clip)
    return ClipJob(clip_id, "url", url, FULL, None, clip)


def plan_jobs(rows: pd.DataFrame, config: Config) -> dict[str, ClipJob]:
    """clip_id → job, in manifest order."""
    cols = ["clip_id", "source", "start_s", "end_s"]
    return {str(r["clip_id"]): job_for(r, config) for r in rows[cols].to_dict("records")}


def local_suffix(path: str) -> str:
    return Path(path).suffix.lower() or ".mp4"
