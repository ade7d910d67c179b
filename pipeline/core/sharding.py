"""Which shard a clip belongs to, and which shard this process works on.

A clip's shard is `sha256(clip_id)` read as a big-endian integer (first 8 bytes) modulo
the number of shards: stable across processes, machines and Python versions, unlike
`hash()`. The shard this process runs defaults from the array-job variables so one
container image runs unchanged as a Slurm array or a Kubernetes Indexed Job.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.core.errors import InputError


def shard_of(clip_id: str, num_shards: int) -> int:
    digest = hashlib.sha256(clip_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @property
    def name(self) -> str:
        """File-name form, e.g. `00003-of-00008`; the count is in it so that shards cut
        with different counts never overwrite each other."""
        return f"{self.index:05d}-of-{self.count:05d}"

    def owns(self, clip_id: str) -> bool:
        return shard_of(clip_id, self.count) == self.index


def parse_shard_name(name: str) -> Shard:
    index, _, count = name.partition("-of-")
    return Shard(int(index), int(count))


def resolve_shard(index: int | None, count: int | None, config_count: int,
                  env: Mapping[str, str] | None = None) -> Shard:
    """Explicit flags win, then Slurm (`SLURM_ARRAY_TASK_ID`/`SLURM_ARRAY_TASK_COUNT`),
    then Kubernetes (`JOB_COMPLETION_INDEX`, count from flag or config), then shard 0 of
    the config's count."""
    env = os.environ if env is None else env

    def env_int(name: str) -> int | None:
        value = env.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise InputError(f"environment variable {name}={value!r} is not an integer",
                             field=name) from None

    if count is None:
        count = env_int("SLURM_ARRAY_TASK_COUNT") or config_count
    if index is None:
        index = env_int("SLURM_ARRAY_TASK_ID")
        slurm_min = env_int("SLURM_ARRAY_TASK_MIN")
        if index is not None and slurm_min:
            index -= slurm_min  # arrays like --array=1-8 start at 1
    if index is None:
        index = env_int("JOB_COMPLETION_INDEX")
    if index is None:
        index = 0
    if count < 1:
        raise InputError("number of shards must be >= 1", field="num_shards")
    if not 0 <= index < count:
        raise InputError(f"shard index {index} is outside 0..{count - 1}", field="shard_index")
    return Shard(index, count)
