"""`extract.compile` on the CPU (inductor, gcc): the compiled run stores the eager run's clips
and rows, features equal within a stated tolerance, and one compilation per extractor serves
shards whose last batches are short by different amounts.

Tolerance: compiled kernels add the same fp32 products in another order. A reordered sum of
K terms moves by about sqrt(K) units of roundoff (u = 2**-24 ≈ 6e-8) of its magnitude, and
such errors add up over the L layers: for VGG-19 (L = 16, K up to 3·3·512 = 4608) about
16 · 68 · 6e-8 ≈ 7e-5 of the feature scale. We allow 1e-4 of the largest eager feature.
Observed on this machine (tiny recipes, seeded random weights): vgg19 9.6e-7, vggish 3.0e-6,
resnet152 8.7e-7, r2plus1d_18 5.0e-7 of the scale; some shards bit-identical.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch._dynamo.eval_frame import _debug_get_cache_entry_list
from torch._dynamo.utils import counters

from extractors import frames
from extractors.frame_extractor import FrameExtractor
from extractors.vggish import VGGishExtractor
from pipeline.core.config import load_config
from pipeline.core.errors import InputError
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard, shard_of
from pipeline.core.workdir import Workdir, ledger_stage
from pipeline.extract.compiled_forward import compile_mode, memory_format_of, padded
from pipeline.extract.stage import run_extract_many
from pipeline.store import clips as clip_store
from tests.fixtures_visual import TINY_VGG, jpeg_frames

RELATIVE_TOLERANCE = 1e-4
BATCH = 3
NAMES = ["vggish", "vgg19"]  # the default extractors of `avel init`
# clip id → frame count: 4 clips in shard 0 and 5 in shard 1, 4 to 16 frames each
CLIPS = {c: 4 + 3 * (k % 5) for k, c in enumerate(
    [c for c in (f"c{i:02d}" for i in range(20)) if shard_of(c, 2) == 0][:4]
    + [c for c in (f"c{i:02d}" for i in range(20)) if shard_of(c, 2) == 1][:5])}


def write_clips(root: Path, compile_setting: object, **extract_settings: object) -> Workdir:
    """Cut clips with 10-11 s of noise audio (vggish: 10 examples) and JPEG frames (vgg19:
    4 of them), two shards, batch 3: every shard's last batch is short."""
    root.mkdir(parents=True)
    extract = {"options": {"vgg19": TINY_VGG}, "weights": {"vggish": "random", "vgg19": "random"},
               "seed": 2, "cpu_threads": 1, "num_workers": 0, "batch_size": BATCH,
               "compile": compile_setting, **extract_settings}
    config = {"dataset": {"name": "ave"}, "sharding": {"num_shards": 2}, "extract": extract}
    (root / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    ids = list(CLIPS)
    pd.DataFrame({"clip_id": ids, "video_id": ids, "source": ids, "start_s": 0.0, "end_s": 10.0,
                  "labels": [[] for _ in ids], "split": "train"}).to_parquet(root / "manifest.parquet")
    wd = Workdir(root)
    for index in range(2):
        media = {}
        for k, (clip_id, n) in enumerate(CLIPS.items()):
            if shard_of(clip_id, 2) != index:
                continue
            rng = np.random.default_rng(k)
            audio = rng.normal(0, 3000, 16000 * 10 + 1000 * k).astype(np.int16)
            media[clip_id] = clip_store.ClipMedia(audio=audio, sample_rate=16000,
                                                  frames=jpeg_frames(n, k),
                                                  frame_times=np.arange(n) / (n / 10))
        shard_file = wd.clips_file(Shard(index, 2))
        clip_store.write_part(shard_file, media)
        clip_store.consolidate(shard_file)
    return wd


def stored(wd: Workdir, name: str, index: int) -> tuple[list[str], np.ndarray, str]:
    with h5py.File(wd.features_file(name, Shard(index, 2))) as fh:
        return [c.decode() for c in fh["clip_id"][()]], fh["features"][()], fh.attrs["compile"]


def test_every_shard_ends_in_a_short_batch_of_a_different_size():
    """The premise of the compile test below: items per shard (vggish 10 a clip, vgg19 4) are
    no multiple of the batch, and the short last batches differ between the shards."""
    per_shard = [sum(1 for c in CLIPS if shard_of(c, 2) == i) for i in range(2)]
    for items_per_clip in (10, 4):
        rests = [n * items_per_clip % BATCH for n in per_shard]
        assert 0 not in rests and len(set(rests)) == 2


@pytest.mark.slow
def test_compiled_run_stores_the_eager_rows_with_one_compilation_per_extractor(tmp_path):
    eager_wd = write_clips(tmp_path / "eager", False)
    compiled_wd = write_clips(tmp_path / "compiled", True)  # `true`: the mode "default"
    for index in range(2):
        run_extract_many(eager_wd.root, NAMES, Shard(index, 2), load_config(eager_wd.root),
                         progress=False)
    torch._dynamo.reset()
    counters.clear()
    frames._CONSTANTS.clear()  # as in a fresh process: normalise has made no constant yet
    for index in range(2):
        summaries = run_extract_many(compiled_wd.root, NAMES, Shard(index, 2),
                                     load_config(compiled_wd.root), progress=False)
        assert all(s["failed"] == 0 for s in summaries)

    # one graph per extractor for both shards' full and short batches: FrameExtractor.forward
    # (vgg19's) and VGGish's undecorated forward each hold one compiled entry
    assert counters["stats"]["unique_graphs"] == 2
    assert len(_debug_get_cache_entry_list(FrameExtractor.forward.__code__)) == 1
    assert len(_debug_get_cache_entry_list(VGGishExtractor.forward.__wrapped__.__code__)) == 1

    for name in NAMES:
        for index in range(2):
            eager_ids, eager, eager_mode = stored(eager_wd, name, index)
            ids, features, mode = stored(compiled_wd, name, index)
            assert (eager_mode, mode) == ("off", "default")  # provenance says how it was run
            # the padded rows never reach the store: the same clips, once each, in order
            assert ids == eager_ids == [c for c in CLIPS if shard_of(c, 2) == index]
            assert features.shape == eager.shape
            scale = float(np.abs(eager).max())
            diff = float(np.abs(features.astype(np.float64) - eager).max())
            assert diff <= RELATIVE_TOLERANCE * scale, (name, index, diff, scale)
            with Ledger(compiled_wd.ledger(ledger_stage("extract", name), Shard(index, 2))) as ledger:
                assert ledger.counts()["done"] == len(ids)
    torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graphs_keep_the_outputs_of_clips_that_span_batches(tmp_path):
    """reduce-overhead on CUDA: a graph's output buffer is overwritten by its next replay, and
    with 4 vgg19 items a clip and batches of 3 most clips span two batches; the stored rows
    must still be the eager run's (strict fp32 on both sides)."""
    settings = {"device": "cuda", "precision": "fp32", "decode": "device"}
    eager_wd = write_clips(tmp_path / "eager", False, **settings)
    graphs_wd = write_clips(tmp_path / "graphs", "reduce-overhead", **settings)
    for wd in (eager_wd, graphs_wd):
        for index in range(2):
            run_extract_many(wd.root, NAMES, Shard(index, 2), load_config(wd.root), progress=False)
    for name in NAMES:
        for index in range(2):
            eager_ids, eager, _ = stored(eager_wd, name, index)
            ids, features, mode = stored(graphs_wd, name, index)
            assert ids == eager_ids and mode == "reduce-overhead"
            scale = float(np.abs(eager).max())
            assert float(np.abs(features.astype(np.float64) - eager).max()) <= RELATIVE_TOLERANCE * scale
    torch._dynamo.reset()


@pytest.mark.parametrize("shape, layout", [
    ((5, 15600), torch.contiguous_format),  # vggish items
    ((5, 3, 8, 6), torch.channels_last),  # frames as decoded (NHWC memory)
    ((5, 3, 4, 8, 6), torch.channels_last_3d),  # R(2+1)D clips: decoded frames, permuted
])
def test_padding_adds_zero_rows_in_the_layout_of_a_full_batch(shape, layout):
    items = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    items = items.contiguous(memory_format=layout)
    full = torch.cat([items[:2], items[2:]])  # how the runner gathers a batch from two clips
    out = padded(items[:2], 5)
    assert memory_format_of(items[:2]) == layout
    assert out.shape == full.shape and out.stride() == full.stride()
    assert torch.equal(out[:2], items[:2]) and not out[2:].any()


def test_compile_setting_takes_booleans_and_torch_modes(tmp_path):
    assert compile_mode(False) is None
    assert compile_mode(True) == "default"
    assert compile_mode("reduce-overhead") == "reduce-overhead"
    for value, expected in (("true", True), ("false", False), ("reduce-overhead", "reduce-overhead")):
        (tmp_path / "avel.yaml").write_text(
            f"dataset: {{name: ave}}\nextract: {{compile: {value}}}\n", encoding="utf-8")
        assert load_config(tmp_path).extract.compile == expected
    (tmp_path / "avel.yaml").write_text("dataset: {name: ave}\nextract: {compile: fast}\n",
                                        encoding="utf-8")
    with pytest.raises(InputError, match="compile"):
        load_config(tmp_path)
