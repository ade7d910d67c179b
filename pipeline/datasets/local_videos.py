"""Where a local dataset's videos are (`dataset.source: local`).

Either a path list names a file per video (`dataset.files.paths`: a CSV `video_id,path`
without header, any extension; relative paths against `videos_dir`, else the work
directory), or the video is `<videos_dir>/<video_id><ext>` for the first of
`dataset.video_ext` that exists (the first one when none does, so the clip fails as
`missing-file` naming the expected file).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.config import Config, resolve
from pipeline.core.errors import InputError
from pipeline.datasets.readers.text import read_table


def read_paths(path: Path, base: Path) -> dict[str, Path]:
    """video_id -> file, from the path list at `path`."""
    out: dict[str, Path] = {}
    for line_no, row in read_table(path, sep=",", header=["video_id", "path"]):
        if not row["video_id"] or not row["path"]:
            raise InputError("needs video_id,path", file=path, line=line_no, field="path")
        if row["video_id"] in out:
            raise InputError(f"video {row['video_id']!r} listed twice", file=path, line=line_no,
                             field="video_id")
        out[row["video_id"]] = base / row["path"]
    return out


class LocalVideos:
    """Answers `path(video_id)` for one dataset config."""

    def __init__(self, config: Config, workdir: str | Path) -> None:
        ds = config.dataset
        self.dir = resolve(workdir, ds.videos_dir or ".")
        exts = [ds.video_ext] if isinstance(ds.video_ext, str) else list(ds.video_ext)
        self.exts = [e if e.startswith(".") else f".{e}" for e in exts] or [".mp4"]
        listed = ds.files.get("paths")
        base = self.dir if ds.videos_dir else resolve(workdir, ".")
        self.listed = read_paths(resolve(workdir, listed), base) if listed else {}

    def path(self, video_id: str) -> Path:
        if video_id in self.listed:
            return self.listed[video_id]
        candidates = [self.dir / f"{video_id}{ext}" for ext in self.exts]
        return next((c for c in candidates if c.is_file()), candidates[0])
