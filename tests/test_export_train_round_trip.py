"""Export → train for every format avel writes: the files an export leaves are the files the
original code reads, so training on them must give the store's rows and train. (The
VGGSound-AVEL round trip is in test_vggsound_avel_train.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.config import load_config
from pipeline.datasets.manifest import load_manifest
from pipeline.export import ave as export_ave
from pipeline.export import llp as export_llp
from pipeline.store import features as store
from pipeline.train import stage as train_stage
from tests.fixtures_export import fill_store
from tests.fixtures_export import make_workdir as make_llp_workdir
from tests.fixtures_psp import make_workdir

ONE_EPOCH = {"epochs": 1, "batch_size": 4}


@pytest.mark.slow
def test_ave_export_trains_back_with_the_store_rows(tmp_path):
    wd = make_workdir(tmp_path / "wd", n=16, splits=(8, 12))
    out = tmp_path / "ave"
    # the weakly-supervised noisy files need background-only videos this work dir lacks;
    # the fully supervised files (what training reads) are all written
    export_ave.export(wd, out, allow_missing=True)
    config = load_config(wd)
    config.train.original_ave_dir = str(out)
    exported = train_stage.load_training_data(wd, config)
    manifest = load_manifest(wd)
    with store.open_features(wd, "vggish") as audio, store.open_features(wd, "vgg19") as video:
        for split, dataset in exported.datasets.items():
            for k in range(len(dataset)):
                item = dataset[k]
                r = int(item["index"])  # the Annotations row = the manifest's `row`
                clip = manifest.loc[manifest["row"] == r, "clip_id"].item()
                assert manifest.loc[manifest["row"] == r, "split"].item() == split
                np.testing.assert_allclose(item["audio"].numpy(), audio[clip], rtol=1e-6)
                np.testing.assert_allclose(item["video"].numpy(), video[clip], rtol=1e-6)
    result = train_stage.train(wd, config, overrides=ONE_EPOCH, device="cpu", progress=False)
    assert result["num_classes"] == 4


@pytest.mark.slow
def test_llp_export_trains_back(tmp_path):
    root = tmp_path / "w"
    data = root / "data"
    data.mkdir(parents=True)
    splits = {"train": ["aaaaaaaaaa1_0_10", "aaaaaaaaaa2_0_10", "aaaaaaaaaa3_0_10",
                        "aaaaaaaaaa4_0_10"],
              "val": ["bbbbbbbbbb1_0_10", "bbbbbbbbbb2_0_10"],
              "test": ["ccccccccc-1_5_15", "cccc_ccccc2_0_10"]}
    names = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
    for split, clips in splits.items():
        (data / names[split]).write_text("filename\tevent_labels\n" + "".join(
            f"{c}\t{('Speech', 'Dog')[i % 2]}\n" for i, c in enumerate(clips)))
    (data / "AVVP_eval_audio.csv").write_text(
        "filename\tonset\toffset\tevent_labels\nbbbbbbbbbb1_0_10\t0\t10\tSpeech\n"
        "ccccccccc-1_5_15\t0\t10\tSpeech\ncccc_ccccc2_0_10\t2\t6\tDog\n")
    (data / "AVVP_eval_visual.csv").write_text(
        "filename\tonset\toffset\tevent_labels\nbbbbbbbbbb2_0_10\t0\t10\tDog\n")
    wd = make_llp_workdir(root, {"name": "llp", "files": {
        "train": "data/AVVP_train.csv", "val": "data/AVVP_val_pd.csv", "test": "data/AVVP_test_pd.csv",
        "eval_audio": "data/AVVP_eval_audio.csv", "eval_visual": "data/AVVP_eval_visual.csv"}})
    stored = {name: fill_store(wd, name, shape, seed=i) for i, (name, shape) in enumerate(
        {"vggish": (10, 128), "resnet152": (80, 2048), "r2plus1d_18": (10, 512)}.items())}
    out = wd / "llp_export"
    export_llp.export(wd, out)
    for kind, name in (("vggish", "vggish"), ("res152", "resnet152"), ("r2plus1d_18", "r2plus1d_18")):
        for clip, row in stored[name].items():  # the files the AVVP loader opens
            np.testing.assert_array_equal(np.load(out / "feats" / kind / f"{clip[:11]}.npy"), row)
    result = train_stage.train(wd, task="avvp", model="han",
                               overrides={**ONE_EPOCH, "original_dir": "llp_export"},
                               device="cpu", progress=False)
    assert "Event@AV" in result["test_table"]  # the test split of the export was evaluated
    assert (Path(result["run_dir"]) / "checkpoints" / "best.pt").is_file()
