"""The feature store's crash-safety scheme: parts, consolidation, and the virtual index."""

from __future__ import annotations

import h5py
import numpy as np

from pipeline.core.atomic import temp_path_for
from pipeline.core.sharding import shard_of
from pipeline.store import features as store


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


def test_index_reads_as_one_array_shard_by_shard_with_one_mapping_per_shard(tmp_path):
    order = [f"c{i}" for i in range(11)]
    for s in range(3):
        ids = [c for i, c in enumerate(order) if i % 3 == s]
        store.write_part(shard_file(tmp_path, s), ids,
                         np.stack([np.full((2, 3), int(c[1:]), np.float32) for c in ids]),
                         {"extractor": "demo"})
        store.consolidate(shard_file(tmp_path, s), order)
    index = store.build_index(tmp_path, order)
    with h5py.File(index) as fh:
        assert fh["features"].is_virtual
        assert len(fh["features"].virtual_sources()) == 3  # not one per clip
        ids = [c.decode() for c in fh["clip_id"][()]]
        # row i of the one array is clip_id[i]: shard 0's clips, then shard 1's, ...
        assert ids == [c for s in range(3) for i, c in enumerate(order) if i % 3 == s]
        assert fh["features"][:, 0, 0].tolist() == [int(c[1:]) for c in ids]
        assert fh.attrs["extractor"] == "demo"
        for c, s, r in zip(ids, fh["shard"][()], fh["row"][()]):  # the merged lookup table
            with h5py.File(shard_file(tmp_path, s)) as shard:
                assert shard["clip_id"][r].decode() == c
    with store.FeatureReader(tmp_path) as reader:
        assert len(reader) == 11 and reader["c7"][1, 2] == 7


def test_index_leaves_out_clips_the_manifest_no_longer_lists(tmp_path):
    store.write_part(shard_file(tmp_path, 0, 1), ["a", "gone", "b"], np.zeros((3, 2), np.float32), {})
    store.consolidate(shard_file(tmp_path, 0, 1))
    with h5py.File(store.build_index(tmp_path, order=["b", "a"])) as fh:
        assert sorted(c.decode() for c in fh["clip_id"][()]) == ["a", "b"]


def fill_shards(root, n_clips, n_shards, shape=(3, 4), parts_per_shard=3):
    """A store written as the extract stage writes it: hash shards, several parts each."""
    rng = np.random.default_rng(1)
    ids = [f"clip{i:04d}" for i in range(n_clips)]
    rows = {c: rng.standard_normal(shape).astype(np.float32) for c in ids}
    for s in range(n_shards):
        mine = [c for c in ids if shard_of(c, n_shards) == s]
        for k in range(parts_per_shard):
            group = mine[k::parts_per_shard]
            if group:
                store.write_part(shard_file(root, s, n_shards), group, np.stack([rows[c] for c in group]), {})
        store.consolidate(shard_file(root, s, n_shards), order=ids)
    return ids, rows


def test_lookups_give_the_same_arrays_as_the_shard_files(tmp_path):
    root = tmp_path / "features" / "demo"
    ids, rows = fill_shards(root, 60, 4)
    store.build_index(root, ids)
    with store.open_features(tmp_path, "demo") as reader:
        assert sorted(reader.clip_ids) == sorted(ids)
        for c in ids:
            path, r = reader.locate(c)
            with h5py.File(path) as fh:  # the shard file, read on its own
                assert fh["clip_id"][r].decode() == c
                np.testing.assert_array_equal(reader[c], fh["features"][r])
            np.testing.assert_array_equal(reader[c], rows[c])  # what was written


def test_reader_does_not_need_the_index(tmp_path):
    ids, rows = fill_shards(tmp_path, 20, 2)
    assert not (tmp_path / "index.h5").exists()
    with store.FeatureReader(tmp_path) as reader:
        np.testing.assert_array_equal(reader[ids[5]], rows[ids[5]])


def test_iter_rows_reads_shard_by_shard_and_gives_the_lookup_rows(tmp_path, monkeypatch):
    ids, rows = fill_shards(tmp_path, 40, 3)
    monkeypatch.setattr(store, "BLOCK_BYTES", 3 * 4 * 4 * 5)  # blocks of 5 rows
    wanted = set(ids[::3])
    with store.FeatureReader(tmp_path) as reader:
        got = list(reader.iter_rows(wanted))
        assert sorted(c for c, _ in got) == sorted(wanted)
        for c, row in got:
            np.testing.assert_array_equal(row, rows[c])
        shards = [reader.locate(c)[0] for c, _ in got]
        assert shards == sorted(shards)  # one shard after another


def test_consolidate_of_many_parts_runs_under_a_low_open_file_limit(tmp_path):
    """Every part used to be opened at once: 1,580 parts failed at `ulimit -n 1024`."""
    import subprocess
    import sys
    target = shard_file(tmp_path, 0, 1)
    order = []
    for p in range(150):
        ids = [f"p{p:03d}_{k}" for k in range(2)]
        order += ids
        store.write_part(target, ids, np.full((2, 3), p, np.float32), {"extractor": "demo"})
    order = order[::-1]
    code = ("import resource, sys; from pathlib import Path; "
            "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)); "
            "from pipeline.store import features as store; "
            f"print(store.consolidate(Path({str(target)!r}), order={order!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "300"
    with h5py.File(target) as fh:
        assert [c.decode() for c in fh["clip_id"][()]] == order
        assert fh["features"][:, 0].tolist() == [float(c[1:4]) for c in order]
    assert not store.parts_dir(target).exists()


def test_consolidate_copies_in_bounded_blocks(tmp_path, monkeypatch):
    """Rows move in blocks of at most BLOCK_BYTES, whatever the shard size."""
    target = shard_file(tmp_path, 0, 1)
    data = np.arange(40 * 6, dtype=np.float32).reshape(40, 6)
    store.write_part(target, [f"c{i}" for i in range(40)], data, {})
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        out = original(self, key)
        if self.name == "/features":
            reads.append(np.asarray(out).nbytes)
        return out
    monkeypatch.setattr(store, "BLOCK_BYTES", 6 * 4 * 7)  # 7 rows
    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    store.consolidate(target)
    assert reads and max(reads) <= 6 * 4 * 7
    monkeypatch.undo()
    with h5py.File(target) as fh:
        np.testing.assert_array_equal(fh["features"][()], data)


def test_index_is_built_once_when_the_last_shard_is_through(tmp_path):
    from pipeline.store.index import index_when_complete
    features = tmp_path / "features" / "demo"
    store.write_part(shard_file(features, 0, 2), ["a"], np.zeros((1, 2), np.float32), {})
    store.consolidate(shard_file(features, 0, 2))
    assert index_when_complete(tmp_path, "demo", 2) is None  # shard 1 not through yet
    store.write_part(shard_file(features, 1, 2), ["b"], np.ones((1, 2), np.float32), {})
    assert index_when_complete(tmp_path, "demo", 2) is None  # its rows are still in a part
    store.consolidate(shard_file(features, 1, 2))
    index = index_when_complete(tmp_path, "demo", 2)
    with h5py.File(index) as fh:
        assert sorted(c.decode() for c in fh["clip_id"][()]) == ["a", "b"]
