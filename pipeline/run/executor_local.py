"""The default executor: shards of a CPU stage in a process pool, extract shards one after
another in this process (one model load, one device)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

from pipeline.core.config import Config, load_config
from pipeline.core.sharding import Shard
from pipeline.run.stages import run_on_shard


def _task(workdir: str, stage: str, shard: Shard, extractor: str | None) -> dict[str, Any]:
    return run_on_shard(workdir, load_config(workdir), stage, shard, extractor)


def run_shards(workdir: str | Path, config: Config, stage: str, shards: list[Shard],
               extractor: str | None = None, workers: int | None = None) -> list[dict[str, Any]]:
    """Run `stage` on every shard; exceptions (throttling included) propagate after the
    shards already running have finished."""
    if stage == "extract" or len(shards) == 1:
        return [run_on_shard(workdir, config, stage, s, extractor) for s in shards]
    workers = workers or min(len(shards), os.cpu_count() or 1)
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_task, str(workdir), stage, s, extractor) for s in shards]
        return [f.result() for f in futures]
