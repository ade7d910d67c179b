"""The Ray executor (extra `ray`): shards of CPU stages become Ray tasks, extract runs in
GPU actors that load their model once and take shard after shard. Results go through the
same ledgers and store files as the local executor; Ray only decides where work runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.core.config import Config, load_config
from pipeline.core.sharding import Shard
from pipeline.extract.stage import build_extractor, settings_for
from pipeline.run.stages import PASS_SEPARATOR, run_on_shard


def connect(config: Config) -> None:
    """Join the cluster at `ray_address` / RAY_ADDRESS, or start a local instance."""
    import ray
    if ray.is_initialized():
        return
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=max(1, os.cpu_count() or 1), include_dashboard=False,
                 log_to_driver=False, configure_logging=False)


def _shard_task(workdir: str, stage: str, shard: Shard) -> dict[str, Any]:
    return run_on_shard(workdir, load_config(workdir), stage, shard)


class _ExtractWorker:
    """Holds the loaded extractor(s) of one extract task and runs shards with them."""

    def __init__(self, workdir: str, name: str) -> None:
        self.workdir = workdir
        self.config = load_config(workdir)
        self.name = name
        names = name.split(PASS_SEPARATOR)
        built = {n: build_extractor(n, settings_for(self.config, n)) for n in names}
        self.extractor = built[name] if len(names) == 1 else built

    def run(self, shard: Shard) -> dict[str, Any]:
        return run_on_shard(self.workdir, self.config, "extract", shard, self.name, self.extractor)


def run_shards(workdir: str | Path, config: Config, stage: str, shards: list[Shard],
               extractor: str | None = None) -> list[dict[str, Any]]:
    import ray
    connect(config)
    workdir = str(Path(workdir).resolve())
    if stage != "extract":
        task = ray.remote(num_cpus=1)(_shard_task)
        return ray.get([task.remote(workdir, stage, s) for s in shards])
    gpus = ray.cluster_resources().get("GPU", 0)
    per_actor = config.extract.ray_gpus_per_actor if gpus else 0
    n_actors = max(1, min(len(shards), int(gpus // per_actor) if per_actor else 1))
    actor_cls = ray.remote(num_gpus=per_actor, num_cpus=1)(_ExtractWorker)
    actors = [actor_cls.remote(workdir, extractor) for _ in range(n_actors)]
    pool = ray.util.ActorPool(actors)
    results = list(pool.map(lambda a, s: a.run.remote(s), shards))
    for actor in actors:
        ray.kill(actor)
    return results
