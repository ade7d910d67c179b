"""The extract stage end to end on CPU with seeded random weights and tiny recipes:
batching invariance, sharded store + index in manifest order, provenance, failures,
idempotent reruns."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import pipeline
from extractors import catalog
from extractors.base import ClipInput
from pipeline.core.config import load_config
from pipeline.core.errors import InputError
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard, shard_of
from pipeline.core.workdir import ledger_stage
from pipeline.extract.stage import BatchPacker, run_extract
from pipeline.store import open_features
from tests.fixtures_visual import TINY_VGG, jpeg_frames, write_workdir

RANDOM_VGG = {"options": {"vgg19": TINY_VGG}, "weights": {"vgg19": "random"}, "seed": 3}


@pytest.fixture(scope="module")
def tiny_vgg():
    return catalog.create("vgg19", weights="random", seed=3, **TINY_VGG)


def _alone(extractor, items: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return extractor.assemble(extractor.forward(items))


def test_features_do_not_depend_on_batch_size_or_neighbours(tiny_vgg):
    clips = {f"c{i}": tiny_vgg.preprocess(ClipInput(frames=jpeg_frames(4 + i, seed=i))) for i in range(3)}
    alone = {c: _alone(tiny_vgg, items) for c, items in clips.items()}
    scale = max(np.abs(a).max() for a in alone.values())
    assert scale > 0
    for batch_size in (1, 3, 5, 64):  # 5 splits clips across batches, 64 packs all in one
        packer = BatchPacker(tiny_vgg, batch_size)
        got: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            for clip_id, items in clips.items():
                got.update((c, tiny_vgg.assemble(o)) for c, o in packer.add(clip_id, items))
            got.update((c, tiny_vgg.assemble(o)) for c, o in packer.flush())
        assert list(got) == list(clips)  # clips come back in order, each once
        for c in clips:
            np.testing.assert_allclose(got[c], alone[c], rtol=0, atol=1e-5 * scale,
                                       err_msg=f"batch size {batch_size}, clip {c}")


def test_packer_fills_every_batch_but_the_last(tiny_vgg):
    seen: list[int] = []

    class Spy:
        def forward(self, items):
            seen.append(len(items))
            return items.float().flatten(1)[:, :1]

    packer = BatchPacker(Spy(), 3)  # type: ignore[arg-type]
    for i, n in enumerate([2, 4, 1, 3]):  # 10 items
        packer.add(f"c{i}", torch.zeros(n, 1))
    packer.flush()
    assert seen == [3, 3, 3, 1]


def test_three_shards_index_is_built_once_and_reads_shard_by_shard_with_provenance(tmp_path: Path):
    ids = [f"vid{i:02d}" for i in range(7)]
    assert len({shard_of(c, 3) for c in ids}) == 3  # every shard gets work
    wd = write_workdir(tmp_path / "w", {c: 4 for c in ids}, num_shards=3, extract=RANDOM_VGG)
    config = load_config(wd.root)
    for i in range(3):
        summary = run_extract(wd.root, "vgg19", Shard(i, 3), config, batch_size=3, progress=False)
        assert summary["failed"] == 0
        assert ("index" in summary) == (i == 2)  # only when the last shard is through
    with h5py.File(wd.features_dir("vgg19") / "index.h5", "r") as fh:
        index_ids = [c.decode() for c in fh["clip_id"][()]]
        joined = fh["features"][()]
        attrs = dict(fh.attrs)
    # shard by shard, each shard in manifest order
    assert index_ids == [c for s in range(3) for c in ids if shard_of(c, 3) == s]
    assert joined.shape == (7, 2, 1, 1, 512) and joined.dtype == np.float32
    # each row equals the same clip read straight from its own shard file
    for row, clip_id in enumerate(index_ids):
        shard_file = wd.features_file("vgg19", Shard(shard_of(clip_id, 3), 3))
        with h5py.File(shard_file, "r") as fh:
            where = [c.decode() for c in fh["clip_id"][()]].index(clip_id)
            np.testing.assert_array_equal(joined[row], fh["features"][where])
    recipe = json.loads(attrs["recipe"])
    assert attrs["extractor"] == "vgg19" and attrs["weights"] == "random"
    assert recipe["recipe"] == "keras-imagenet" and recipe["seed"] == 3 and recipe["image"]["size"] == 32
    assert attrs["precision"] == "fp32" and attrs["device"].startswith("cpu")
    assert attrs["avel_version"] == pipeline.__version__
    assert attrs["config_hash"] == config.hash()
    assert json.loads(attrs["package_versions"])["torch"] == torch.__version__
    with open_features(wd.root, "vgg19") as reader:
        np.testing.assert_array_equal(reader["vid03"], joined[index_ids.index("vid03")])


def test_clip_with_too_few_frames_is_a_recorded_failure_and_rerun_is_idempotent(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", {"ok1": 4, "short": 3, "ok2": 5}, extract=RANDOM_VGG)
    config = load_config(wd.root)
    first = run_extract(wd.root, "vgg19", Shard(0, 1), config, progress=False)
    assert (first["done"], first["failed"], first["rows"]) == (2, 1, 2)
    with Ledger(wd.ledger(ledger_stage("extract", "vgg19"), Shard(0, 1))) as ledger:
        entry = ledger.get("short")
        assert entry.status == "failed" and entry.reason == "too_few_frames" and entry.permanent
        assert ledger.get("ok1").status == "done"
    before = open_features(wd.root, "vgg19")["ok2"].copy()
    again = run_extract(wd.root, "vgg19", Shard(0, 1), config, progress=False)
    assert again["todo"] == 0 and again["rows"] == 2
    with h5py.File(wd.features_file("vgg19", Shard(0, 1)), "r") as fh:
        assert sorted(c.decode() for c in fh["clip_id"][()]) == ["ok1", "ok2"]
    np.testing.assert_array_equal(open_features(wd.root, "vgg19")["ok2"], before)


def test_float16_store_and_bf16_precision_are_recorded_and_close_to_fp32(tmp_path: Path):
    clips = {"a": 4, "b": 4}
    ref = write_workdir(tmp_path / "ref", clips, extract=RANDOM_VGG)
    low = write_workdir(tmp_path / "low", clips, extract=RANDOM_VGG)
    run_extract(ref.root, "vgg19", Shard(0, 1), load_config(ref.root), progress=False)
    run_extract(low.root, "vgg19", Shard(0, 1), load_config(low.root), progress=False,
                precision="bf16", store_dtype="float16")
    with open_features(ref.root, "vgg19") as r, open_features(low.root, "vgg19") as q:
        assert q.attrs["precision"] == "bf16" and q.attrs["store_dtype"] == "float16"
        assert q["a"].dtype == np.float16
        scale = np.abs(r["a"]).max()
        # bf16 keeps 8 mantissa bits: a 16-layer net drifts by a few percent of the scale
        assert np.abs(q["a"].astype(np.float32) - r["a"]).max() < 0.1 * scale
        assert not np.array_equal(q["a"].astype(np.float32), r["a"])


def test_changing_the_recipe_in_the_same_workdir_is_refused(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", {"a": 4}, extract=RANDOM_VGG)
    run_extract(wd.root, "vgg19", Shard(0, 1), load_config(wd.root), progress=False)
    config = load_config(wd.root)
    config.extract.options["vgg19"] = {**TINY_VGG, "recipe": "torchvision-imagenet"}
    with pytest.raises(InputError, match="different recipe"):
        run_extract(wd.root, "vgg19", Shard(0, 1), config, progress=False)


def test_video_clip_items_go_through_the_same_runner(tmp_path: Path):
    """R(2+1)D items are 5-D clips, not frames; the one runner packs them all the same."""
    tiny = {"image_size": 16, "clip_len": 1}
    wd = write_workdir(tmp_path / "w", {"a": 12, "b": 10},
                       extract={"options": {"r2plus1d_18": tiny}, "weights": {"r2plus1d_18": "random"},
                                "batch_size": 3, "num_workers": 1})
    summary = run_extract(wd.root, "r2plus1d_18", Shard(0, 1), load_config(wd.root), progress=False)
    assert (summary["done"], summary["rows"]) == (2, 2)
    alone = catalog.create("r2plus1d_18", weights="random", seed=0, **tiny)
    with open_features(wd.root, "r2plus1d_18") as reader:
        for clip_id, n in (("a", 12), ("b", 10)):
            frames = jpeg_frames(n, seed={"a": 0, "b": 1}[clip_id])
            want = _alone(alone, alone.preprocess(ClipInput(frames=frames)))
            assert reader[clip_id].shape == (10, 512)
            np.testing.assert_allclose(reader[clip_id], want, rtol=0, atol=1e-5 * np.abs(want).max())
