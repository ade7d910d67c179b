"""A flush that fails half-way leaves no clip marked done without its row on disk.

The extract stage writes each batch of finished clips as a part file and only then marks them
done in the ledger (the reverse order would let a crash between the two record clips as done
whose features never reached the disk). A rerun after a kill reconciles either order, so
the kill tests cannot tell them apart; a write that raises can: the clips of the failed
flush must stay not-done.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pipeline.core.config import load_config
from pipeline.core.ledger import DONE, Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import ledger_stage
from pipeline.extract import stage
from pipeline.extract.stage import run_extract
from pipeline.store import features as store
from tests.fixtures_visual import TINY_VGG, write_workdir

CLIPS = {f"clip{i:02d}": 4 for i in range(6)}
# one clip per batch (2 items of 2 frames each), a flush after every finished clip
SETTINGS = {"options": {"vgg19": TINY_VGG}, "weights": {"vgg19": "random"}, "seed": 5,
            "flush_clips": 1, "batch_size": 2}


def test_disk_full_on_the_second_flush_leaves_no_clip_done_without_its_row(tmp_path: Path,
                                                                              monkeypatch):
    wd = write_workdir(tmp_path / "w", CLIPS, extract=SETTINGS)
    shard = Shard(0, 1)
    real_write_part = store.write_part
    flushes: list[list[str]] = []

    def write_part_then_disk_full(shard_file, clip_ids, features, attrs):
        flushes.append(list(clip_ids))
        if len(flushes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(shard_file))
        return real_write_part(shard_file, clip_ids, features, attrs)

    monkeypatch.setattr(stage.store, "write_part", write_part_then_disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_extract(wd.root, "vgg19", shard, load_config(wd.root), progress=False)
    monkeypatch.undo()

    shard_file = wd.features_file("vgg19", shard)
    stored = store.stored_clip_ids(shard_file)
    with Ledger(wd.ledger(ledger_stage("extract", "vgg19"), shard)) as ledger:
        done = {e.clip_id for e in ledger.entries() if e.status == DONE}
    assert stored == set(flushes[0])  # the first flush reached the disk ...
    assert done == stored  # ... and only its clips are marked done
    assert not done & set(flushes[1])

    # the rerun extracts the rest, each clip once
    run_extract(wd.root, "vgg19", shard, load_config(wd.root), progress=False)
    with Ledger(wd.ledger(ledger_stage("extract", "vgg19"), shard)) as ledger:
        assert {e.clip_id for e in ledger.entries() if e.status == DONE} == set(CLIPS)
    assert store.stored_clip_ids(shard_file) == set(CLIPS)
