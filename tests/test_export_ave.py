"""AVE h5 export/import: loader written to the spec, round trip, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.core.errors import InputError
from pipeline.core.ledger import Ledger
from pipeline.core.sharding import Shard, shard_of
from pipeline.core.workdir import Workdir
from pipeline.datasets.manifest import load_manifest
from pipeline.export import ave as export_ave
from tests.fixtures_export import ave_workdir, fill_store, h5, read_store

N = 30  # first 30 Annotations rows


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("ave")
    wd = ave_workdir(root / "w", shared_data, limit=N)
    audio = fill_store(wd, "vggish", (10, 128), seed=1, skip=7)  # clips 6, 13, 20, 27 absent
    visual = fill_store(wd, "vgg19", (10, 7, 7, 512), seed=2)
    # the extract stage's ledger knows why clip 6 has no audio features
    clip6 = load_manifest(wd)["clip_id"][6]
    with Ledger(Workdir(wd).ledger("extract-vggish", Shard(shard_of(clip6, 2), 2))) as ledger:
        ledger.ensure([clip6])
        ledger.start(clip6)
        ledger.failed(clip6, "no audio track", permanent=True)
    out = root / "out"
    report = export_ave.export(wd, out, orders_dir=shared_data / "ave", allow_missing=True)
    return wd, out, audio, visual, report


def spec_loader(out: Path, split: str) -> dict[str, np.ndarray]:
    """What the PSP fully-supervised loader does: read whole arrays under 'avadataset',
    then index rows by the order file."""
    with h5py.File(out / f"{split}_order.h5", "r") as hf:
        order = hf["order"][:].tolist()
    arrays = {}
    for name in ("audio_feature", "visual_feature", "right_labels"):
        with h5py.File(out / f"{name}.h5", "r") as hf:
            arrays[name] = hf["avadataset"][:]
    return {"order": np.array(order), **{k: v[order] for k, v in arrays.items()}}


def test_files_have_the_spec_shapes(exported):
    _, out, *_ = exported
    expected = {"audio_feature.h5": (N, 10, 128), "visual_feature.h5": (N, 10, 7, 7, 512),
                "right_labels.h5": (N, 10, 29), "mil_labels.h5": (N, 29),
                "prob_label.h5": (N, 29), "labels_closs.h5": (N, 10)}
    for name, shape in expected.items():
        assert h5(out / name).shape == shape, name
    assert h5(out / "audio_feature.h5").dtype == np.float64
    for split in ("train", "val", "test"):
        assert h5(out / f"{split}_order.h5", "order").dtype == np.int64


def test_loader_gets_the_store_rows(exported):
    wd, out, audio, visual, _ = exported
    manifest = load_manifest(wd)
    seen = 0
    for split in ("train", "val", "test"):
        batch = spec_loader(out, split)
        for i, r in enumerate(batch["order"]):
            clip = manifest["clip_id"][r]
            assert manifest["row"][r] == r
            if clip in audio:
                np.testing.assert_array_equal(batch["audio_feature"][i], audio[clip])
            else:
                assert not batch["audio_feature"][i].any()
            np.testing.assert_array_equal(batch["visual_feature"][i].astype(np.float32), visual[clip])
            seen += 1
    assert seen == N


def test_order_files_of_a_slice_are_ascending(exported, shared_data):
    """A 30-row slice holds only part of each shipped split, so the shipped sequence
    cannot be kept: each split's rows are written ascending."""
    wd, out, *_ = exported
    manifest = load_manifest(wd)
    for split in ("train", "val", "test"):
        expected = np.flatnonzero((manifest["split"] == split).to_numpy())
        np.testing.assert_array_equal(h5(out / f"{split}_order.h5", "order"), expected)


def test_missing_clips_are_zero_and_listed(exported):
    wd, out, audio, _, report = exported
    manifest = load_manifest(wd)
    absent = [c for c in manifest["clip_id"] if c not in audio]
    assert len(absent) == 4
    lines = [line.split("\t") for line in (out / "missing.txt").read_text().splitlines()
             if not line.startswith("#") and "\t*\t" not in line]  # '*': background files
    assert [clip for _, clip, _ in lines] == absent
    assert [why for *_, why in lines] == ["failed: no audio track"] + ["not in the store"] * 3
    feats = h5(out / "audio_feature.h5")
    for i, c in enumerate(manifest["clip_id"]):
        assert feats[i].any() == (c in audio)
    readme = (out / "README.txt").read_text()
    assert "RANDOM weights" in readme and "clips without features: 4" in readme


def test_round_trip_store_export_import_store(exported, tmp_path, shared_data):
    wd, out, audio, visual, _ = exported
    fresh = ave_workdir(tmp_path / "w2", shared_data, limit=N)
    report = export_ave.import_(out, fresh)
    assert report.stored == {"vggish": N - 4, "vgg19": N}
    back_audio, back_visual = read_store(fresh, "vggish"), read_store(fresh, "vgg19")
    assert back_audio.keys() == audio.keys()
    for c in audio:
        assert back_audio[c].dtype == audio[c].dtype
        np.testing.assert_array_equal(back_audio[c], audio[c])
    for c in visual:
        np.testing.assert_array_equal(back_visual[c], visual[c])
    with h5py.File(fresh / "features" / "vggish" / "index.h5", "r") as fh:
        assert fh.attrs["weights"].startswith("imported: ")


def test_full_size_order_files_are_copied_exactly(tmp_path, shared_data):
    """With the whole Annotations list the written order files equal the shipped ones."""
    wd = ave_workdir(tmp_path / "w", shared_data, limit=4143)
    out = tmp_path / "out"
    export_ave.export(wd, out, orders_dir=shared_data / "ave", allow_missing=True)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(h5(out / f"{split}_order.h5", "order"),
                                      h5(shared_data / "ave" / f"{split}_order.h5", "order"))
    np.testing.assert_array_equal(h5(out / "mil_labels.h5"), h5(shared_data / "ave" / "mil_labels.h5"))
    np.testing.assert_array_equal(h5(out / "labels_closs.h5"),
                                  h5(shared_data / "ave" / "labels_closs.h5"))
    for split in ("train", "val", "test"):  # CMM's split: the dataset's own, copied
        np.testing.assert_array_equal(h5(out / f"{split}_order_match.h5", "order"),
                                      h5(shared_data / "ave" / f"{split}_order_match.h5", "order"))
    # no store at all: the feature files are not written (no 8 GB of zeros) but listed
    assert not (out / "visual_feature.h5").exists() and not (out / "audio_feature.h5").exists()
    whole = [line for line in (out / "missing.txt").read_text().splitlines() if "\t*\t" in line]
    assert {line.split("\t")[0] for line in whole} >= {"audio_feature.h5", "visual_feature.h5",
                                                      "visual_feature_vec.h5"}


def test_import_names_a_file_with_the_wrong_shape(exported, tmp_path, shared_data):
    _, out, *_ = exported
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    with h5py.File(bad / "audio_feature.h5", "w") as fh:
        fh.create_dataset("avadataset", data=np.zeros((N, 10, 64)))
    fresh = ave_workdir(tmp_path / "w3", shared_data, limit=N)
    with pytest.raises(InputError, match=r"audio_feature\.h5.*shape \[30, 10, 64\]"):
        export_ave.import_(bad, fresh)
    assert not (fresh / "features").exists()  # validated before anything is written


def test_import_names_a_file_with_the_wrong_dtype_or_key(exported, tmp_path, shared_data):
    _, out, *_ = exported
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    with h5py.File(bad / "visual_feature.h5", "w") as fh:
        fh.create_dataset("avadataset", data=np.zeros((N, 10, 7, 7, 512), dtype="S1"))
    fresh = ave_workdir(tmp_path / "w3", shared_data, limit=N)
    with pytest.raises(InputError, match=r"visual_feature\.h5.*dtype"):
        export_ave.import_(bad, fresh)
    with h5py.File(bad / "visual_feature.h5", "w") as fh:
        fh.create_dataset("features", data=np.zeros((N, 10, 7, 7, 512)))
    with pytest.raises(InputError, match=r"visual_feature\.h5.*no dataset 'avadataset'"):
        export_ave.import_(bad, fresh)


def test_released_float64_features_import_as_stored_and_export_back(tmp_path, shared_data):
    """Real released VGGish values (audio_feature_noisy.h5, float64, post-ReLU) placed in an
    audio_feature.h5 of the released layout: float32 store = float32 cast; a float64 store
    keeps them bit for bit, and exporting it gives the released rows back."""
    released = h5(shared_data / "ave" / "audio_feature_noisy.h5")[:N]
    assert released.dtype == np.float64
    src = tmp_path / "released"
    src.mkdir()
    with h5py.File(src / "audio_feature.h5", "w") as fh:
        fh.create_dataset("avadataset", data=released)
    wd = ave_workdir(tmp_path / "w", shared_data, limit=N)
    export_ave.import_(src, wd)
    clips = list(load_manifest(wd)["clip_id"])
    stored = read_store(wd, "vggish")
    for i, clip in enumerate(clips):
        np.testing.assert_array_equal(stored[clip], released[i].astype(np.float32))
    wd64 = ave_workdir(tmp_path / "w64", shared_data, limit=N)
    export_ave.import_(src, wd64, store_dtype="float64")
    export_ave.export(wd64, tmp_path / "out", allow_missing=True)
    np.testing.assert_array_equal(h5(tmp_path / "out" / "audio_feature.h5"), released)


def test_import_twice_stores_each_clip_once(exported, tmp_path, shared_data):
    _, out, audio, _, _ = exported
    fresh = ave_workdir(tmp_path / "w", shared_data, limit=N)
    export_ave.import_(out, fresh)
    export_ave.import_(out, fresh)
    with h5py.File(fresh / "features" / "vggish" / "index.h5", "r") as fh:
        ids = [c.decode() for c in fh["clip_id"][()]]
    assert sorted(ids) == sorted(audio) and len(ids) == len(set(ids))
    assert not list((fresh / "features" / "vggish").rglob("part-*.h5"))
