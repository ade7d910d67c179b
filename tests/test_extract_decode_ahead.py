"""Issue #19: device decode ahead of the network (`extract.decode_threads`). The threaded path
must give what the per-clip reference path (decode_threads 0) gives, bit for bit on the CPU
stand-in, in the same order; a broken JPEG in a group of clips decoded in one call rejects
that clip only; and an error in any decode-side thread reaches the caller instead of hanging."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from extractors import catalog
from extractors import frames as frames_module
from extractors.frames import (
    decode_batch,
    device_constant,
    normalise,
    pack_jpegs,
    pil_nearest_index,
    resize_on_device,
    unpack_jpegs,
)
from pipeline.core.config import load_config
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir, ledger_stage
from pipeline.extract.decode_ahead import DecodeAhead, LoadedClip
from pipeline.extract.stage import ClipChunks, ClipItems, run_extract, run_extract_many, unchunk
from pipeline.store import clips as clip_store
from pipeline.store import open_features
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_visual import TINY_RESNET, TINY_VGG, TWO_EXTRACTORS, write_workdir

TWO = TWO_EXTRACTORS
CLIPS = {"a": 4, "b": 6, "short": 1, "c": 5, "d": 7, "e": 4, "f": 8}


def _features(root: Path, name: str) -> dict[str, np.ndarray]:
    with open_features(root, name) as reader:
        return {c: reader[c].copy() for c in reader.clip_ids}


def _ledger(root: Path, name: str) -> dict[str, tuple]:
    with Ledger(Workdir(root).ledger(ledger_stage("extract", name), Shard(0, 1))) as ledger:
        return {e.clip_id: (e.status, e.reason, e.attempts, e.checksum) for e in ledger.entries()}


def _decode_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("avel-decode")]


# -- the runner: threaded == reference -----------------------------------------------------
def test_threaded_decode_equals_the_per_clip_path_bit_for_bit(tmp_path: Path):
    """vgg19 + resnet152 in one pass; batch 8 puts two or three clips in one decode call
    (each clip ships 4 JPEGs: the frames both recipes take). The threaded run reads through a
    loader worker process, as a real run does (the reader thread iterates the DataLoader)."""
    batch_size = 8
    runs = {}
    for threads, workers in ((0, 0), (2, 1)):
        wd = write_workdir(tmp_path / f"t{threads}", CLIPS, extract={**TWO, "batch_size": batch_size})
        summaries = run_extract_many(wd.root, ["vgg19", "resnet152"], Shard(0, 1), load_config(wd.root),
                                     progress=False, decode="device", decode_threads=threads,
                                     num_workers=workers)
        runs[threads] = (wd.root, summaries)
    (ref_root, ref), (root, got) = runs[0], runs[2]
    for r, g in zip(ref, got):
        assert (g["done"], g["failed"], g["decode_threads"]) == (r["done"], r["failed"], 2) == (6, 1, 2)
        assert r["decode_threads"] == 0
    # the reference decodes clip by clip (6 clips ship frames); the threads group them
    assert ref[0]["decode_calls"] == 6
    assert got[0]["decode_calls"] == 3  # a+b, short+c+d, e+f: 8 JPEGs a call
    for name in ("vgg19", "resnet152"):
        want, have = _features(ref_root, name), _features(root, name)
        assert list(have) == list(want) == ["a", "b", "c", "d", "e", "f"]
        for clip_id in want:
            np.testing.assert_array_equal(have[clip_id], want[clip_id], err_msg=f"{name} {clip_id}")
        # the ledgers tell the same story: statuses, reasons, attempts, checksums of the rows
        assert _ledger(root, name) == _ledger(ref_root, name)
    assert _decode_threads_alive() == []


def test_a_broken_jpeg_in_a_decode_group_rejects_only_its_clip(tmp_path: Path):
    """Three 4-frame clips, batch 16: one decode call for all three fails on b's bad frame,
    then each clip is decoded alone (1 + 3 calls); a and c come out as the reference's."""
    runs = {}
    for threads in (0, 2):
        wd = write_workdir(tmp_path / f"t{threads}", {"a": 4, "b": 4, "c": 4},
                           extract={**TWO, "batch_size": 16})
        shard_file = wd.clips_file(Shard(0, 1))
        media = clip_store.read_clip(shard_file, "b")
        media.frames[1] = b"\xff\xd8 not a jpeg"
        clip_store.write_part(shard_file, {"b": media})
        clip_store.consolidate(shard_file)
        summary = run_extract(wd.root, "vgg19", Shard(0, 1), load_config(wd.root), progress=False,
                              decode="device", decode_threads=threads)
        runs[threads] = (wd.root, summary)
    (ref_root, ref), (root, got) = runs[0], runs[2]
    assert (got["done"], got["failed"]) == (ref["done"], ref["failed"]) == (2, 1)
    assert got["decode_calls"] == 4 and ref["decode_calls"] == 3
    ledger = _ledger(root, "vgg19")
    assert ledger["b"][:2] == ("failed", "bad_frame")
    assert ledger["a"][0] == ledger["c"][0] == "done"
    want, have = _features(ref_root, "vgg19"), _features(root, "vgg19")
    assert list(have) == list(want) == ["a", "c"]
    for clip_id in want:
        np.testing.assert_array_equal(have[clip_id], want[clip_id])


@pytest.mark.timeout(120)
def test_an_error_in_a_decode_thread_is_raised_by_run_extract(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", {f"c{i}": 4 for i in range(6)}, extract={**TWO, "batch_size": 4})
    extractor = catalog.create("vgg19", weights="random", seed=2, **TINY_VGG)

    def broken(images: list[torch.Tensor]) -> torch.Tensor:
        raise RuntimeError("resize exploded")

    extractor.items_on_device = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="resize exploded"):
        run_extract(wd.root, "vgg19", Shard(0, 1), load_config(wd.root), progress=False,
                    extractor=extractor, decode="device", decode_threads=2)
    assert _decode_threads_alive() == []
    # nothing was marked done, and the shard is free for the rerun
    fixed = catalog.create("vgg19", weights="random", seed=2, **TINY_VGG)
    summary = run_extract(wd.root, "vgg19", Shard(0, 1), load_config(wd.root), progress=False,
                          extractor=fixed, decode="device", decode_threads=2)
    assert summary["done"] == 6


# -- DecodeAhead on its own ------------------------------------------------------------------
def _loaded(tmp_path: Path, clips: dict[str, int]) -> tuple[list[LoadedClip], dict]:
    wd = write_workdir(tmp_path / "w", clips, extract=TWO)
    extractor = catalog.create("vgg19", weights="random", seed=2, **TINY_VGG)
    items = ClipItems(wd.clips_file(Shard(0, 1)), list(clips), [extractor], decode_on_device=True)
    return [items[i] for i in range(len(clips))], {"vgg19": extractor}


def test_loader_items_of_several_clips_give_each_clip_as_one_clip_an_item_does(tmp_path: Path):
    """With device decode a loader item carries several clips and one tensor of all their
    JPEGs: unchunked, each clip has the payloads and the very JPEG bytes `ClipItems` ships for
    it alone, as views of the item's tensor; a clip that ships nothing (too few frames for both
    recipes, or not in the store) sits between others without shifting their bytes."""
    clips = {"a": 4, "short": 1, "b": 6, "c": 5, "d": 7}
    wd = write_workdir(tmp_path / "w", clips, extract=TWO)
    ex = [catalog.create("vgg19", weights="random", **TINY_VGG),
          catalog.create("resnet152", weights="random", **TINY_RESNET)]
    ids = ["a", "short", "gone", "b", "c", "d"]  # "gone": never cut
    items = ClipItems(wd.clips_file(Shard(0, 1)), ids, ex, decode_on_device=True)
    chunks = ClipChunks(items, per_item=4)
    assert len(chunks) == 2  # 4 clips, then the last 2
    loaded = [chunks[0], chunks[1]]
    got = list(unchunk(iter(loaded)))
    assert [c[0] for c in got] == ids
    for i, (clip_id, payloads, packed) in enumerate(got):
        ref_id, ref_payloads, ref_packed = items[i]
        assert clip_id == ref_id and payloads == ref_payloads
        if ref_packed is None:
            assert packed is None, clip_id
            continue
        assert packed is not None and packed[1] == ref_packed[1], clip_id
        assert [bytes(x.numpy()) for x in unpack_jpegs(*packed)] == \
            [bytes(x.numpy()) for x in unpack_jpegs(*ref_packed)], clip_id
        data = loaded[0 if i < 4 else 1][1]  # a view of its item's one tensor, not a copy
        assert packed[0].untyped_storage().data_ptr() == data.untyped_storage().data_ptr()
    assert got[1][2] is None and got[2][2] is None  # short: rejected by both; gone: unreadable
    assert {kind for kind, _ in got[2][1].values()} == {"rejected"}


@pytest.mark.parametrize("threads,group_frames", [(1, 1), (3, 4), (3, 9), (2, 1000)])
def test_clips_come_out_in_loader_order_with_the_reference_items(tmp_path: Path, threads, group_frames):
    clips = {f"c{i:02d}": 4 + i % 3 for i in range(11)}
    loaded, extractors = _loaded(tmp_path, clips)
    reference = list(DecodeAhead(iter(loaded), extractors, torch.device("cpu"), threads=0))
    ahead = DecodeAhead(iter(loaded), extractors, torch.device("cpu"), threads=threads,
                        group_frames=group_frames)
    got = list(ahead)
    assert [c.clip_id for c in got] == [c.clip_id for c in reference] == list(clips)
    for r, g in zip(reference, got):
        (kind_r, items_r), (kind_g, items_g) = r.payloads["vgg19"], g.payloads["vgg19"]
        assert kind_r == kind_g == "items"
        assert torch.equal(items_r, items_g), r.clip_id
    # a group holds clips until it has group_frames frames (4 frames each here): 11 clips
    # in 11 calls at 1 or 4 frames a group, 4 calls at 9 (3 clips a call), 1 at 1000
    assert ahead.calls == {1: 11, 4: 11, 9: 4, 1000: 1}[group_frames]
    assert _decode_threads_alive() == []


@pytest.mark.timeout(60)
def test_a_failing_loader_is_raised_in_order_after_the_clips_before_it(tmp_path: Path):
    loaded, extractors = _loaded(tmp_path, {f"c{i}": 4 for i in range(5)})

    def source() -> Iterator[LoadedClip]:
        yield from loaded[:3]
        raise OSError("loader worker died")

    seen = []
    with pytest.raises(OSError, match="loader worker died"):
        for clip in DecodeAhead(source(), extractors, torch.device("cpu"), threads=2, group_frames=4):
            seen.append(clip.clip_id)
    assert seen == ["c0", "c1", "c2"]
    assert _decode_threads_alive() == []


@pytest.mark.timeout(60)
def test_close_stops_threads_that_are_blocked_on_a_full_queue(tmp_path: Path):
    loaded, extractors = _loaded(tmp_path, {"a": 4})

    def endless() -> Iterator[LoadedClip]:
        while True:
            yield loaded[0]

    ahead = DecodeAhead(endless(), extractors, torch.device("cpu"), threads=2, group_frames=4, depth=1)
    clips = iter(ahead)
    assert next(clips).clip_id == "a"
    ahead.close(timeout_s=30)
    assert _decode_threads_alive() == []


# -- nothing on the device path waits for the device ------------------------------------------
def test_device_constants_are_made_once_per_device_and_value(monkeypatch):
    """normalise's mean/std and the nearest-resize indices come from one cached tensor each:
    making them per batch or per clip with torch.tensor(..., device="cuda") is a host sync."""
    monkeypatch.setattr(frames_module, "_CONSTANTS", {})
    recipe = catalog.create("vgg19", weights="random", **TINY_VGG).image  # nearest → 32, caffe mean
    items = torch.randint(0, 256, (2, 3, 48, 64), dtype=torch.uint8)
    first = normalise(items, recipe)
    resized = resize_on_device(list(items), recipe)
    cpu = torch.device("cpu")
    keys = {(recipe.mean, torch.float32, cpu), (recipe.std, torch.float32, cpu),
            (pil_nearest_index(48, 32), torch.int64, cpu), (pil_nearest_index(64, 32), torch.int64, cpu)}
    assert set(frames_module._CONSTANTS) == keys
    made = dict(frames_module._CONSTANTS)
    assert torch.equal(normalise(items, recipe), first)
    assert torch.equal(resize_on_device(list(items), recipe), resized)
    assert all(frames_module._CONSTANTS[k] is made[k] for k in keys) and len(frames_module._CONSTANTS) == 4
    # the values: the recipe's in float32; PIL's nearest source pixels
    assert device_constant(recipe.mean, torch.float32, cpu).tolist() == torch.tensor(recipe.mean).tolist()
    assert made[(pil_nearest_index(64, 32), torch.int64, cpu)].tolist() == list(pil_nearest_index(64, 32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (sync debug mode)")
def test_device_decode_resize_and_forward_never_sync_the_host(shared_data: Path):
    real = sorted((shared_data / "llp" / "reference_frames_BjCEufrlXm4").glob("*.jpg"))[:4]
    jpegs = unpack_jpegs(*pack_jpegs([p.read_bytes() for p in real]))
    for name, options in (("vgg19", TINY_VGG), ("resnet152", TINY_RESNET)):
        extractor = catalog.create(name, weights="random", **options).to("cuda")
        with torch.inference_mode():
            warm = extractor.forward(extractor.items_on_device(decode_batch(jpegs, "cuda")))
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                out = extractor.forward(extractor.items_on_device(decode_batch(jpegs, "cuda")))
            finally:
                torch.cuda.set_sync_debug_mode("default")
        assert torch.equal(out, warm)


def test_negative_decode_threads_is_refused_by_the_config(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", {"a": 4}, extract={**TWO, "decode_threads": -1})
    with pytest.raises(Exception, match="decode_threads"):
        load_config(wd.root)


def test_cli_decode_threads_reaches_the_runner(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", {"a": 4, "b": 5, "c": 4}, extract={**TWO, "batch_size": 16})
    done = subprocess.run(avel_cmd("extract", "--workdir", str(wd.root), "-e", "vgg19", "--decode", "device",
                                   "--decode-threads", "1", "--no-progress"),
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    # one thread (not the default 2), all three clips (12 JPEGs < 16) in one decode call
    assert (summary["decode_threads"], summary["decode_calls"], summary["done"]) == (1, 1, 3)
