"""Issue #19 on CPU: several extractors in one pass over a shard, device decode (its CPU
stand-in: the same code run with device="cpu") against the PIL reference path, and a
killed multi-extractor pass resumed without losing or duplicating a clip."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from extractors import catalog
from extractors.base import ClipInput
from extractors.frames import (
    DEVICE_DECODE_PIXEL_BOUND,
    ImageRecipe,
    decode_batch,
    decode_many,
    decode_on_device,
    pack_jpegs,
    pil_nearest_index,
    unpack_jpegs,
)
from extractors.r2plus1d_18 import KINETICS
from extractors.resnet152 import IMAGENET
from extractors.vgg19 import RECIPES as VGG_RECIPES
from pipeline.core.config import load_config
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import ledger_stage
from pipeline.extract.stage import ClipItems, run_extract, run_extract_many
from pipeline.store import clips as clip_store
from pipeline.store import open_features
from pipeline.store.features import parts_dir
from tests.conftest import avel_cmd, cli_env
from tests.fixtures_visual import TINY_RESNET, TINY_VGG, TWO_EXTRACTORS, jpeg_frames, write_workdir

TWO = {**TWO_EXTRACTORS, "batch_size": 3}
CLIPS = {"a": 4, "b": 6, "short": 1, "c": 5}  # "short": too few frames for both recipes

FULL_RECIPES = {
    "vgg19 keras-imagenet": VGG_RECIPES["keras-imagenet"],
    "vgg19 torchvision-imagenet": VGG_RECIPES["torchvision-imagenet"],
    "resnet152": IMAGENET,
    "r2plus1d_18": KINETICS,
}


def _features(root: Path, name: str) -> dict[str, np.ndarray]:
    with open_features(root, name) as reader:
        return {c: reader[c].copy() for c in reader.clip_ids}


# -- one pass == separate runs ----------------------------------------------------------
@pytest.mark.parametrize("decode", ["cpu", "device"])
def test_one_pass_of_two_extractors_equals_separate_runs(tmp_path: Path, decode: str):
    together = write_workdir(tmp_path / "together", CLIPS, extract=TWO)
    apart = write_workdir(tmp_path / "apart", CLIPS, extract=TWO)
    summaries = run_extract_many(
        together.root,
        ["vgg19", "resnet152"],
        Shard(0, 1),
        load_config(together.root),
        progress=False,
        decode=decode,
    )
    assert [s["extractor"] for s in summaries] == ["vgg19", "resnet152"]
    for s in summaries:
        assert (s["done"], s["failed"], s["rows"], s["decode"]) == (3, 1, 3, decode)
    for name in ("vgg19", "resnet152"):
        run_extract(apart.root, name, Shard(0, 1), load_config(apart.root), progress=False, decode=decode)
        one, two = _features(together.root, name), _features(apart.root, name)
        assert list(one) == list(two) == ["a", "b", "c"]
        for clip_id in one:  # same batches, same thread count: bit for bit
            np.testing.assert_array_equal(one[clip_id], two[clip_id], err_msg=f"{name} {clip_id}")
        with open_features(together.root, name) as reader:  # each its own provenance
            assert reader.attrs["extractor"] == name and reader.attrs["decode"] == decode
        # and its own ledger
        with Ledger(together.ledger(ledger_stage("extract", name), Shard(0, 1))) as ledger:
            assert ledger.get("short").reason == "too_few_frames"
            assert {c: ledger.get(c).status for c in ("a", "b", "c")} == dict.fromkeys("abc", "done")


def test_one_pass_resumes_each_extractor_on_its_own(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", CLIPS, extract=TWO)
    config = load_config(wd.root)
    first = run_extract(wd.root, "vgg19", Shard(0, 1), config, progress=False)
    vgg_before = _features(wd.root, "vgg19")
    second = run_extract_many(wd.root, ["vgg19", "resnet152"], Shard(0, 1), config, progress=False)
    assert first["done"] == 3
    assert second[0]["todo"] == 0 and second[0]["done"] == 0  # vgg19 was done: not redone
    assert second[1]["done"] == 3 and second[1]["rows"] == 3
    after = _features(wd.root, "vgg19")
    assert list(after) == list(vgg_before)
    for c in after:
        np.testing.assert_array_equal(after[c], vgg_before[c])


def test_frames_only_pass_reads_no_audio_and_ships_each_frame_once(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", {"a": 6}, extract=TWO)
    ex = [
        catalog.create("vgg19", weights="random", **TINY_VGG),
        catalog.create("resnet152", weights="random", **TINY_RESNET),
    ]
    clips_file = wd.clips_file(Shard(0, 1))
    clip_id, payloads, packed = ClipItems(clips_file, ["a"], ex, decode_on_device=True)[0]
    stored = clip_store.read_clip(clips_file, "a").frames
    # vgg19 takes round(linspace(0, 5, 4)) = 0, 2, 3, 5; resnet152 the same 4: sent once
    assert [kind for kind, _ in payloads.values()] == ["frames", "frames"]
    assert [len(x) for x in unpack_jpegs(*packed)] == [len(stored[i]) for i in (0, 2, 3, 5)]
    assert [bytes(x.numpy()) for x in unpack_jpegs(*packed)] == [stored[i] for i in (0, 2, 3, 5)]
    reader = clip_store.ClipReader(clips_file)
    media = reader.read("a", audio=False)
    assert media.audio.size == 0 and len(media.frames) == 6
    assert reader.read("a").audio.size == 160  # asked for: read
    reader.close()


# -- device decode stand-in vs the PIL reference ------------------------------------------
def test_pil_nearest_index_is_the_pixel_pil_picks():
    for w, h in [(320, 240), (480, 360), (341, 256), (640, 480), (160, 120), (1280, 720), (48, 36)]:
        ramp = np.arange(w * h, dtype=np.int32).reshape(h, w)
        for size in (224, 112, 256):
            out = np.asarray(Image.fromarray(ramp).resize((size, size), Image.NEAREST))
            assert list(out[0] % w) == list(pil_nearest_index(w, size)), (w, size)
            assert list(out[:, 0] // w) == list(pil_nearest_index(h, size)), (h, size)
    # torch's nearest-exact (floor((i + 0.5) * step)) picks another pixel at 320 → 224
    exact = np.floor((np.arange(224) + 0.5) * 320 / 224).astype(int)
    assert list(exact) != list(pil_nearest_index(320, 224))


def _frame_sets(shared_data: Path) -> dict[str, list[bytes]]:
    real = sorted((shared_data / "llp" / "reference_frames_BjCEufrlXm4").glob("*.jpg"))[:12]
    return {
        "real 320x240": [p.read_bytes() for p in real],
        "synthetic 480x360": jpeg_frames(6, seed=4, size=(480, 360)),
        "synthetic 176x144": jpeg_frames(6, seed=5, size=(176, 144)),
    }


@pytest.mark.parametrize("recipe_name", list(FULL_RECIPES))
def test_device_decode_stand_in_equals_pil_within_the_stated_pixel_bound(shared_data: Path, recipe_name: str):
    recipe: ImageRecipe = FULL_RECIPES[recipe_name]
    bound = DEVICE_DECODE_PIXEL_BOUND[recipe.interpolation]
    for label, jpegs in _frame_sets(shared_data).items():
        ref = decode_many(jpegs, recipe)
        got = decode_on_device(unpack_jpegs(*pack_jpegs(jpegs)), recipe, "cpu")
        assert got.shape == ref.shape and got.dtype == torch.uint8
        gap = (ref.int() - got.int()).abs()
        assert int(gap.max()) <= bound, f"{recipe_name} on {label}: max {int(gap.max())} > {bound}"
        assert float(gap.float().mean()) < 0.5, label  # rounding, not a shifted or blurred image


@pytest.mark.parametrize(
    "name,options,bound",
    [
        ("vgg19", {**TINY_VGG, "image_size": 64}, 0.0),  # nearest: the same pixels, the same features
        ("vgg19", {**TINY_VGG, "image_size": 64, "recipe": "torchvision-imagenet"}, 1e-2),
        ("resnet152", {"image_size": 64, "frames": 4, "min_frames": 1}, 1e-2),
        ("r2plus1d_18", {"image_size": 32, "clips": 1, "clip_len": 4, "min_frames": 1}, 1e-2),
    ],
)
def test_device_decode_features_stay_within_the_bound_of_the_cpu_path(
    shared_data: Path, name, options, bound
):
    """Feature bound per recipe: max |device - cpu| / max |cpu| over a clip (fp32, random weights)."""
    extractor = catalog.create(name, weights="random", seed=1, **options)
    clip = ClipInput(frames=_frame_sets(shared_data)["real 320x240"])
    chosen = [clip.frames[i] for i in extractor.frame_indices(clip)]
    with torch.inference_mode():
        ref = extractor.assemble(extractor.forward(extractor.preprocess(clip)))
        images = decode_batch(unpack_jpegs(*pack_jpegs(chosen)), "cpu")
        got = extractor.assemble(extractor.forward(extractor.items_on_device(images)))
    rel = float(np.abs(got - ref).max() / np.abs(ref).max())
    assert rel <= bound, f"{name}: {rel:.2e} > {bound}"


def test_a_broken_jpeg_rejects_the_clip_with_device_decode_too(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", {"a": 4, "b": 4}, extract=TWO)
    shard_file = wd.clips_file(Shard(0, 1))
    media = clip_store.read_clip(shard_file, "b")
    media.frames[1] = b"\xff\xd8 not a jpeg"
    clip_store.write_part(shard_file, {"b": media})
    clip_store.consolidate(shard_file)
    summary = run_extract(
        wd.root, "vgg19", Shard(0, 1), load_config(wd.root), progress=False, decode="device"
    )
    assert (summary["done"], summary["failed"]) == (1, 1)
    with Ledger(wd.ledger(ledger_stage("extract", "vgg19"), Shard(0, 1))) as ledger:
        assert ledger.get("b").reason == "bad_frame"


# -- kill and rerun ------------------------------------------------------------------------
KILL_CLIPS = {f"clip{i:02d}": 4 for i in range(10)}
KILL = {**TWO, "flush_clips": 1, "batch_size": 4}


def _rows(root: Path, name: str) -> tuple[list[str], np.ndarray]:
    with h5py.File(root / "features" / name / "index.h5", "r") as fh:
        return [c.decode() for c in fh["clip_id"][()]], fh["features"][()]


def _extract_two(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        avel_cmd(
            "extract",
            "--workdir",
            str(root),
            "-e",
            "vgg19",
            "-e",
            "resnet152",
            "--decode",
            "device",
            "--no-progress",
        ),
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigkill_mid_one_pass_then_rerun_loses_and_duplicates_nothing(tmp_path: Path):
    broken = write_workdir(tmp_path / "broken", KILL_CLIPS, extract=KILL)
    parts = [parts_dir(broken.features_file(n, Shard(0, 1))) for n in ("vgg19", "resnet152")]
    proc = _extract_two(broken.root)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if all(len(list(p.glob("part-*.h5"))) >= 2 for p in parts):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert all(2 <= len(list(p.glob("part-*.h5"))) < len(KILL_CLIPS) for p in parts)

    rerun = _extract_two(broken.root)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    unbroken = write_workdir(tmp_path / "unbroken", KILL_CLIPS, extract=KILL)
    whole = _extract_two(unbroken.root)
    assert whole.wait(timeout=600) == 0
    for name in ("vgg19", "resnet152"):
        ids, values = _rows(broken.root, name)
        ref_ids, ref_values = _rows(unbroken.root, name)
        assert ids == ref_ids == list(KILL_CLIPS), name  # each clip exactly once, manifest order
        np.testing.assert_allclose(values, ref_values, rtol=0, atol=1e-5 * np.abs(ref_values).max())
        with Ledger(broken.ledger(ledger_stage("extract", name), Shard(0, 1))) as ledger:
            assert all(ledger.get(c).status == "done" for c in KILL_CLIPS)


def test_decode_option_is_checked_by_the_config(tmp_path: Path):
    wd = write_workdir(tmp_path / "w", {"a": 4}, extract={**TWO, "decode": "gpu"})
    with pytest.raises(Exception, match="decode"):
        load_config(wd.root)


def test_jpeg_bytes_pack_round_trip():
    jpegs = jpeg_frames(3, seed=0)
    data, lengths = pack_jpegs(jpegs)
    assert data.dtype == torch.uint8 and data.numel() == sum(map(len, jpegs))
    assert [bytes(t.numpy()) for t in unpack_jpegs(data, lengths)] == jpegs
    assert Image.open(io.BytesIO(bytes(unpack_jpegs(data, lengths)[2].numpy()))).size == (48, 36)


def test_avel_run_extracts_every_configured_extractor_in_one_pass(tmp_path: Path):
    from pipeline.run.runner import run

    wd = write_workdir(
        tmp_path / "w", {"a": 4, "b": 5}, extract={**TWO, "extractors": ["vgg19", "resnet152"]}
    )
    report = run(wd.root, ["extract"], executor="local")
    assert report["exit_code"] == 0
    for name in ("vgg19", "resnet152"):
        (summary,) = report["stages"][f"extract-{name}"]
        assert summary["done"] == 2 and summary["one_pass_with"] == [
            {"vgg19": "resnet152"}.get(name, "vgg19")
        ]
        assert list(_features(wd.root, name)) == ["a", "b"]


def test_clip_reader_reads_what_consolidation_will_keep(tmp_path: Path):
    """A part newer than the shard file wins, as in `consolidate` (later parts win)."""
    wd = write_workdir(tmp_path / "w", {"a": 3, "b": 2}, extract=TWO)
    shard_file = wd.clips_file(Shard(0, 1))
    newer = clip_store.read_clip(shard_file, "a")
    newer.frames = newer.frames[:1]
    time.sleep(0.01)  # part names start with the write time: this one is the newest
    clip_store.write_part(shard_file, {"a": newer})  # not consolidated: a part over the shard
    reader = clip_store.ClipReader(shard_file)
    try:
        before = {c: reader.read(c) for c in ("a", "b")}
        with pytest.raises(KeyError):
            reader.read("missing")
    finally:
        reader.close()
    assert len(before["a"].frames) == 1
    clip_store.consolidate(shard_file)
    for clip_id, got in before.items():
        want = clip_store.read_clip(shard_file, clip_id)
        assert got.frames == want.frames and np.array_equal(got.audio, want.audio), clip_id


def test_audio_and_frame_extractors_share_one_pass(tmp_path: Path, shared_data: Path):
    """vggish (audio) + vgg19 (frames), as the demo and AVE configs run them: one read of
    each clip serves both, and each store equals its extractor run alone."""
    import soundfile as sf

    real, rate = sf.read(shared_data / "vggsound" / "FwVYUHKoLtQ_000034.wav", dtype="int16")
    settings = {
        "options": {"vgg19": TINY_VGG, "vggish": {"recipe": "ave"}},
        "weights": {"vgg19": "random", "vggish": "random"},
        "seed": 2,
        "batch_size": 5,
        "cpu_threads": 1,
    }
    roots = []
    for label in ("together", "apart"):
        wd = write_workdir(tmp_path / label, {"a": 4, "b": 4}, extract=settings)
        shard_file = wd.clips_file(Shard(0, 1))
        media = {c: clip_store.read_clip(shard_file, c) for c in ("a", "b")}
        for k, m in enumerate(media.values()):
            m.audio, m.sample_rate = real[k * 16000 : k * 16000 + 16000 * 4], rate
        clip_store.write_part(shard_file, media)
        clip_store.consolidate(shard_file)
        roots.append(wd.root)
    together, apart = roots
    summaries = run_extract_many(
        together, ["vggish", "vgg19"], Shard(0, 1), load_config(together), progress=False, decode="device"
    )
    assert [(s["extractor"], s["done"], s["decode"]) for s in summaries] == [
        ("vggish", 2, "cpu"),
        ("vgg19", 2, "device"),
    ]  # audio has no device decode
    for name in ("vggish", "vgg19"):
        run_extract(apart, name, Shard(0, 1), load_config(apart), progress=False, decode="device")
        one, two = _features(together, name), _features(apart, name)
        assert list(one) == list(two) == ["a", "b"]
        for c in one:
            np.testing.assert_array_equal(one[c], two[c], err_msg=f"{name} {c}")
