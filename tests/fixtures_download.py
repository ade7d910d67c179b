"""Fixtures for the download tests: generated clips, a loopback server, a work directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.core.config import load_config
from pipeline.datasets.manifest import build_manifest

# Settings that keep test runs quick: short timeouts and backoffs, no request pacing.
FAST = {"socket_timeout_s": 1.0, "backoff_base_s": 0.05, "backoff_max_s": 0.5,
        "requests_per_s": 0.0, "workers": 2, "max_attempts": 3, "throttle_limit": 4}


def make_workdir(root: Path, data: Path, url: str | None, *, source: str = "url",
                 **download: Any) -> Path:
    """A work directory over the synthetic AVE-format `data`, served from `url` (or local),
    with its manifest already built."""
    root.mkdir(parents=True, exist_ok=True)
    dataset: dict[str, Any] = {"name": "ave", "source": source,
                               "files": {"annotations": str(data / "Annotations.txt"),
                                         "orders_dir": str(data)}}
    if source == "local":
        dataset["videos_dir"] = str(data / "videos")
    else:
        dataset["url_template"] = f"{url}/{{video_id}}.mp4"
    config = {"dataset": dataset, "download": {"mode": "full", **FAST, **download}}
    (root / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build_manifest(root, load_config(root))
    return root


def synthetic_data(tmp_path_factory, n_clips: int = 10) -> Path:  # type: ignore[no-untyped-def]
    """Generated AVE-format clips shared by every download test of the session (the
    generator skips clips already written, so calling this again is cheap)."""
    from pipeline.demo.synthetic import write_dataset

    data = tmp_path_factory.getbasetemp() / "download-synthetic"
    write_dataset(data, n_clips=n_clips, n_classes=2, seed=3)
    return data


def served_copy(data: Path, root: Path) -> Path:
    """A copy of the clips to serve, so a test may spoil one file without touching `data`."""
    import shutil

    target = root / "served"
    shutil.copytree(data / "videos", target)
    return target


def ledger_entries(workdir: Path) -> dict:
    from pipeline.core.ledger import Ledger
    from pipeline.core.sharding import Shard
    from pipeline.core.workdir import Workdir

    with Ledger(Workdir(workdir).ledger("download", Shard(0, 1))) as ledger:
        return {e.clip_id: e for e in ledger.entries()}
