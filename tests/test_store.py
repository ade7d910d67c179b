"""The feature store's crash-safety scheme: parts, consolidation, and the virtual index."""

from __future__ import annotations

import h5py
import numpy as np

from pipeline.store import features as store
from pipeline.core.atomic import temp_path_for


def shard_file(tmp_path, i, n=3):
    return tmp_path / f"{i:05d}-of-{n:05d}.h5"


def test_later_parts_win_and_each_clip_appears_once(tmp_path):
    f = shard_file(tmp_path, 0, 1)
    store.write_part(f, ["a", "b"], np.zeros((2, 4), np.float32), {"weights": "random"})
    store.write_part(f, ["b", "c"], np.ones((2, 4), np.float32), {"weights": "random"})
    assert store.consolidate(f, order=["c", "b", "a"]) == 3
    with h5py.File(f) as fh:
        assert [c.decode() for c in fh["clip_id"][()]] == ["c", "b", "a"]
        assert fh["features"][:, 0].tolist() == [1.0, 1.0, 0.0]
        assert fh.attrs["weights"] == "random"
    assert not store.parts_dir(f).exists()


def test_stale_temps_of_a_killed_consolidate_are_cleared_but_not_other_shards(tmp_path):
    mine, other = shard_file(tmp_path, 0), shard_file(tmp_path, 1)
    store.write_part(mine, ["a"], np.zeros((1, 2), np.float32), {})
    stale_mine = temp_path_for(mine)  # what a kill mid-rename leaves
    in_flight_other = temp_path_for(other)  # another shard's writer, still running
    store.consolidate(mine)
    assert not stale_mine.exists()
    assert in_flight_other.exists()


def test_index_reads_as_one_array_in_manifest_order(tmp_path):
    order = [f"c{i}" for i in range(11)]
    for s in range(3):
        ids = [c for i, c in enumerate(order) if i % 3 == s]
        store.write_part(shard_file(tmp_path, s), ids,
                         np.stack([np.full((2, 3), int(c[1:]), np.float32) for c in ids]),
                         {"extractor": "demo"})
        store.consolidate(shard_file(tmp_path, s), order)
    index = store.build_index(tmp_path, order[::-1])
    with h5py.File(index) as fh:
        assert fh["features"].is_virtual
        assert fh["features"][:, 0, 0].tolist() == list(range(10, -1, -1))
        assert [c.decode() for c in fh["clip_id"][()]] == order[::-1]
        assert fh.attrs["extractor"] == "demo"
    with store.FeatureReader(tmp_path) as reader:
        assert len(reader) == 11 and reader["c7"][1, 2] == 7
