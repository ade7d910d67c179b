"""Options every stage command shares, declared once."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.core.config import Config, load_config
from pipeline.core.sharding import Shard, resolve_shard

workdir_option = click.option(
    "--workdir", "-w", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
    show_default=True, help="Work directory holding avel.yaml and every stage's outputs.")
shard_index_option = click.option(
    "--shard-index", type=int, default=None,
    help="Shard to work on (default: SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, or 0).")
num_shards_option = click.option(
    "--num-shards", type=int, default=None,
    help="Number of shards (default: SLURM_ARRAY_TASK_COUNT or sharding.num_shards).")


def shard_options(func):  # type: ignore[no-untyped-def]
    return workdir_option(shard_index_option(num_shards_option(func)))


def config_and_shard(workdir: Path, shard_index: int | None,
                     num_shards: int | None) -> tuple[Config, Shard]:
    config = load_config(workdir)
    return config, resolve_shard(shard_index, num_shards, config.sharding.num_shards)
