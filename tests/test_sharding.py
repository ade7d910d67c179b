"""Shard assignment: a partition, stable across processes, and the array-job variables."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.core.errors import InputError
from pipeline.core.sharding import Shard, resolve_shard, shard_of

# First 16 hex digits of `printf %s ID | sha256sum` (coreutils), as an integer, mod N.
FIXED = {
    # clip id: (sha256 prefix, shard of 7, shard of 64)
    "RUhOCu3LNXM": ("4f1041c93e3998cd", 1, 13),
    "BjCEufrlXm4_20_30": ("0b8f0d3a971423d5", 2, 21),
}


@pytest.mark.parametrize("clip_id", sorted(FIXED))
def test_shard_matches_the_documented_hash(clip_id):
    prefix, of7, of64 = FIXED[clip_id]
    assert int(prefix, 16) % 7 == of7
    assert shard_of(clip_id, 7) == of7
    assert shard_of(clip_id, 64) == of64
    assert shard_of(clip_id, 1) == 0


@pytest.mark.parametrize("n", [1, 7, 64])
def test_every_clip_is_in_exactly_one_shard(n):
    ids = [f"clip{i:05d}" for i in range(2000)]
    owners = [[s for s in range(n) if Shard(s, n).owns(c)] for c in ids]
    assert all(len(o) == 1 for o in owners)
    if n > 1:  # and the hash spreads them
        sizes = [sum(1 for o in owners if o[0] == s) for s in range(n)]
        assert min(sizes) > 0.5 * len(ids) / n


def test_assignment_is_the_same_in_another_process_with_another_hash_seed():
    ids = [f"x{i}" for i in range(50)] + list(FIXED)
    here = [shard_of(c, 64) for c in ids]
    code = f"from pipeline.core.sharding import shard_of; print([shard_of(c, 64) for c in {ids!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert eval(out) == here


def test_flags_win_over_environment():
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8", "JOB_COMPLETION_INDEX": "5"}
    assert resolve_shard(1, 4, 2, env) == Shard(1, 4)


def test_slurm_array_selects_the_shard():
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert resolve_shard(None, None, 1, env) == Shard(3, 8)


def test_slurm_array_starting_at_one_is_shifted():
    env = {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1"}
    assert resolve_shard(None, None, 1, env) == Shard(7, 8)


def test_kubernetes_indexed_job_takes_the_count_from_config_or_flag():
    env = {"JOB_COMPLETION_INDEX": "5"}
    assert resolve_shard(None, None, 6, env) == Shard(5, 6)
    assert resolve_shard(None, 10, 6, env) == Shard(5, 10)


def test_no_environment_means_shard_zero_of_the_config_count():
    assert resolve_shard(None, None, 3, {}) == Shard(0, 3)


@pytest.mark.parametrize("env,count", [({"JOB_COMPLETION_INDEX": "6"}, 6),
                                       ({"SLURM_ARRAY_TASK_ID": "x"}, 2)])
def test_bad_shard_environment_is_an_input_error(env, count):
    with pytest.raises(InputError):
        resolve_shard(None, None, count, env)


def test_shard_name_carries_the_count():
    assert Shard(3, 8).name == "00003-of-00008"
