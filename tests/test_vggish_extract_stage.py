"""The `vggish` extractor driven by the shared extract runner: store rows equal the
extractor run alone, the recipe is recorded, bad audio lands in the ledger with its reason."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from extractors.base import ClipInput
from extractors.vggish import VGGishExtractor
from pipeline.core.config import load_config
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir, ledger_stage
from pipeline.extract.stage import run_extract
from pipeline.store import clips as clip_store
from pipeline.store import open_features


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("wd")
    real, rate = sf.read(shared_data / "vggsound" / "FwVYUHKoLtQ_000034.wav", dtype="int16")
    audio = {"full": real, "short": real[:16000 * 3 + 500], "silent": np.zeros(200, np.int16)}
    config = {"dataset": {"name": "ave"},
              "extract": {"num_workers": 0, "batch_size": 7, "weights": {"vggish": "random"},
                          "options": {"vggish": {"recipe": "ave"}}, "seed": 2, "device": "cpu"}}
    (root / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    ids = list(audio)
    pd.DataFrame({"clip_id": ids, "video_id": ids, "source": ids, "start_s": 0.0, "end_s": 10.0,
                  "labels": [[] for _ in ids], "split": "train"}).to_parquet(root / "manifest.parquet")
    shard_file = Workdir(root).clips_file(Shard(0, 1))
    clip_store.write_part(shard_file, {c: clip_store.ClipMedia(audio=a, sample_rate=rate, frames=[],
                                                               frame_times=np.zeros(0))
                                       for c, a in audio.items()})
    clip_store.consolidate(shard_file)
    summary = run_extract(root, "vggish", Shard(0, 1), load_config(root), progress=False)
    return root, audio, rate, summary


def test_rows_equal_the_extractor_alone(workdir):
    root, audio, rate, summary = workdir
    assert summary["done"] == 2 and summary["failed"] == 1 and summary["weights"] == "random"
    alone = VGGishExtractor("ave", weights="random", seed=2)
    features = open_features(root, "vggish")
    for clip_id in ("full", "short"):
        with torch.inference_mode():
            expected = alone.assemble(alone.forward(alone.preprocess(ClipInput(audio[clip_id], rate))))
        np.testing.assert_allclose(features[clip_id], expected, atol=1e-4 * np.abs(expected).max())
    assert (features["short"][3:] == 0).all() and (features["short"][:3] != 0).any(axis=1).all()


def test_recipe_and_random_weights_are_recorded(workdir):
    root, *_ = workdir
    attrs = open_features(root, "vggish").attrs
    recipe = json.loads(attrs["recipe"])
    assert recipe["recipe"] == "ave" and recipe["fc2_relu"] is True
    assert recipe["postprocess"] == "none" and attrs["weights"] == "random"


def test_too_short_audio_is_a_ledger_failure_with_reason(workdir):
    root, *_ = workdir
    ledger = Ledger(Workdir(root).ledger(ledger_stage("extract", "vggish"), Shard(0, 1)))
    entry = ledger.get("silent")
    assert entry.status == "failed" and entry.reason == "audio_too_short"
