"""Where each stage's outputs live inside a work directory.

All paths derived from manifest values go through `Workdir.clip_path`, which refuses
anything that could leave the directory, so no manifest row can write elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.sharding import Shard

SAFE_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.+=@,")


def check_clip_id(clip_id: str) -> str | None:
    """Why `clip_id` is unusable as a file name, or None when it is fine."""
    if not clip_id:
        return "empty clip id"
    if "\x00" in clip_id:
        return "clip id contains a NUL byte"
    if "/" in clip_id or "\\" in clip_id:
        return "clip id contains a path separator"
    if clip_id in (".", "..") or clip_id.startswith("."):
        return "clip id starts with '.'"
    bad = sorted(set(clip_id) - SAFE_ID_CHARS)
    if bad:
        return f"clip id contains characters {''.join(bad)!r}"
    if len(clip_id) > 200:
        return "clip id is longer than 200 characters"
    return None


def ledger_stage(stage: str, extractor: str | None = None) -> str:
    """The ledger directory of a stage: `extract-<extractor>` for extract (one per extractor),
    the stage's own name otherwise."""
    return f"extract-{extractor}" if stage == "extract" else stage


@dataclass(frozen=True)
class Workdir:
    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root).resolve())

    @property
    def config(self) -> Path:
        return self.root / "avel.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.parquet"

    def ledger(self, stage: str, shard: Shard) -> Path:
        return self.root / "state" / stage / f"{shard.name}.sqlite"

    def raw_dir(self, shard: Shard) -> Path:
        return self.root / "raw" / shard.name

    def clips_file(self, shard: Shard) -> Path:
        return self.root / "clips" / f"{shard.name}.h5"

    def loose_dir(self) -> Path:
        return self.root / "clips" / "loose"

    def features_dir(self, extractor: str) -> Path:
        return self.root / "features" / extractor

    def features_file(self, extractor: str, shard: Shard) -> Path:
        return self.features_dir(extractor) / f"{shard.name}.h5"

    def clip_path(self, directory: Path, clip_id: str, suffix: str = "") -> Path:
        """`directory/<clip_id><suffix>`, guaranteed to stay inside the work directory."""
        problem = check_clip_id(clip_id)
        if problem:
            raise ValueError(f"{problem}: {clip_id!r}")
        path = (directory / f"{clip_id}{suffix}").resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"clip path {path} leaves the work directory {self.root}")
        return path
