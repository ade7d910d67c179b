"""Helpers for the cut tests: a work directory whose manifest points at given local files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml


def make_workdir(root: Path, clips: list[tuple[str, Path, float, float]],
                 cut: dict[str, Any] | None = None, num_shards: int = 1) -> Path:
    """avel.yaml + manifest.parquet for `clips` = [(clip_id, file, start_s, end_s)]."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"dataset": {"name": "ave", "source": "local", "videos_dir": "videos"},
              "sharding": {"num_shards": num_shards}, "cut": {"workers": 1, **(cut or {})}}
    (root / "avel.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    table = pd.DataFrame({
        "clip_id": [c[0] for c in clips], "video_id": [c[0] for c in clips],
        "source": [str(c[1]) for c in clips], "start_s": [float(c[2]) for c in clips],
        "end_s": [float(c[3]) for c in clips], "labels": [[] for _ in clips],
        "split": ["test" for _ in clips]})
    table.to_parquet(root / "manifest.parquet", index=False)
    return root
