"""VGGSound-AVEL zip/pkl export/import: the CPSP loader, round trip, pickle trust, bad files."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import InputError
from pipeline.datasets import labels
from pipeline.datasets.manifest import load_manifest
from pipeline.export import vggsound_avel as vav
from tests.fixtures_export import fill_store, read_store, vggsound_avel_workdir

N = 6


def zero_one(rng, shape):
    return rng.integers(0, 2, size=shape)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("vav")
    wd = vggsound_avel_workdir(root / "w", n=N)
    stored = {"vggish": fill_store(wd, "vggish", (10, 128), seed=1),
              "resnet_layer3": fill_store(wd, "resnet_layer3", (10, 1024, 7, 7), seed=2, skip=4),
              "avc_label": fill_store(wd, "avc_label", (10,), seed=3, make=zero_one,
                                      extra_attrs={"weights": "annotation"})}
    out = root / "out"
    vav.export(wd, out)
    return wd, out, stored


def cpsp_item(out: Path, split: str, index: int):
    """VGGSoundAVELDatasetFully.__getitem__, restated: meta CSV rows of the split, class id
    = line index in the categories file, one .pkl per zip, pad/truncate audio to 10,
    label [10, C+1] with the avc in the class column and 1-avc in the last."""
    df = pd.read_csv(out / "vggsound-avel100k.csv")
    row = df[df["split"] == split].iloc[index]
    cats = [line.strip() for line in open(out / "VggsoundAVEL100kCategories.txt")]

    def load(d):
        with zipfile.ZipFile(os.path.join(out, d, f"{row['video_id']}.zip")) as zf:
            for name in zf.namelist():
                if ".pkl" in name:
                    with zf.open(name) as fh:
                        fea = pickle.load(io.BytesIO(fh.read()))
        return fea

    audio, video, avc = load("audio_feature"), load("video_feature"), load("avc_label")
    label = np.zeros((10, len(cats) + 1))
    label[:, cats.index(row["category"])] = avc
    label[:, -1] = 1 - avc
    return row["video_id"], video, audio, label


def test_cpsp_loader_reads_the_store_rows(exported):
    wd, out, stored = exported
    manifest = load_manifest(wd)
    for split in ("train", "val"):
        clip, video, audio, label = cpsp_item(out, split, 0)
        assert video.shape == (10, 1024, 7, 7) and audio.shape == (10, 128)
        np.testing.assert_array_equal(audio, stored["vggish"][clip])
        np.testing.assert_array_equal(video, stored["resnet_layer3"][clip])
        row = manifest[manifest["clip_id"] == clip].iloc[0]
        ours = labels.vggsound_avel_labels([row["class_id"]], stored["avc_label"][clip][None],
                                           n_classes=4)[0]
        np.testing.assert_array_equal(label, ours)
        assert label.shape == (10, 5) and label.sum() == 10


def test_meta_and_categories_files(exported):
    wd, out, _ = exported
    meta = pd.read_csv(out / "vggsound-avel100k.csv")
    assert list(meta.columns) == ["category", "video_id", "split"]
    assert list(meta["video_id"]) == list(load_manifest(wd)["clip_id"])
    assert (out / "VggsoundAVEL100kCategories.txt").read_text().split("\n")[:4] == \
        (wd / "cats.txt").read_text().split("\n")[:4]
    missing = (out / "missing.txt").read_text().splitlines()[1:]
    assert missing == [f"video_feature\t{c}\tnot in the store" for c in list(meta["video_id"])[3::4]]


def test_round_trip_with_trusted_pickles(exported, tmp_path):
    _, out, stored = exported
    fresh = vggsound_avel_workdir(tmp_path / "w", n=N)
    report = vav.import_(out, fresh, trust_pickles=True)
    assert report.stored == {"vggish": N, "resnet_layer3": N - 1, "avc_label": N}
    for name, rows in stored.items():
        back = read_store(fresh, name)
        assert back.keys() == rows.keys()
        for clip, array in rows.items():
            np.testing.assert_array_equal(back[clip], array)


def test_import_without_trust_stops_and_runs_nothing(tmp_path):
    fresh = vggsound_avel_workdir(tmp_path / "w", n=N)
    clip = load_manifest(fresh)["clip_id"][0]
    marker = tmp_path / "ran"
    (tmp_path / "src" / "audio_feature").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "src" / "audio_feature" / f"{clip}.zip", "w") as zf:
        zf.writestr(f"{clip}.pkl", pickle.dumps(Boom(str(marker))))
    with pytest.raises(InputError, match="--trust-pickles"):
        vav.import_(tmp_path / "src", fresh)
    assert not marker.exists()
    assert not (fresh / "features").exists()


class Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_bad_shape_names_the_file_and_leaves_the_store_unchanged(exported, tmp_path):
    _, out, _ = exported
    fresh = vggsound_avel_workdir(tmp_path / "w", n=N)
    src = tmp_path / "src"
    for d in ("audio_feature", "video_feature"):
        (src / d).mkdir(parents=True)
        for zip_path in (out / d).glob("*.zip"):
            (src / d / zip_path.name).write_bytes(zip_path.read_bytes())
    clip = load_manifest(fresh)["clip_id"][2]
    bad = src / "video_feature" / f"{clip}.zip"
    vav._zip_pickle(bad, f"{clip}.pkl", np.zeros((10, 512, 7, 7), np.float32))
    with pytest.raises(InputError, match=rf"{clip}\.zip.*shape \[10, 512, 7, 7\] is not \[10,1024,7,7\]"):
        vav.import_(src, fresh, trust_pickles=True)
    assert not list((fresh / "features").rglob("*.h5"))  # audio parts written before were removed
    vav._zip_pickle(bad, f"{clip}.pkl", "not an array")
    with pytest.raises(InputError, match=rf"{clip}\.zip.*expected a numpy array"):
        vav.import_(src, fresh, trust_pickles=True)


def test_short_audio_is_padded_like_the_loader(tmp_path):
    fresh = vggsound_avel_workdir(tmp_path / "w", n=N)
    clip = load_manifest(fresh)["clip_id"][0]
    short = np.arange(7 * 128, dtype=np.float32).reshape(7, 128)
    (tmp_path / "src" / "audio_feature").mkdir(parents=True)
    vav._zip_pickle(tmp_path / "src" / "audio_feature" / f"{clip}.zip", "x.pkl", short)
    vav.import_(tmp_path / "src", fresh, trust_pickles=True)
    back = read_store(fresh, "vggish")[clip]
    np.testing.assert_array_equal(back[:7], short)
    np.testing.assert_array_equal(back[7:], np.stack([short[-1]] * 3))


def test_channel_last_store_is_written_channel_first(tmp_path):
    wd = vggsound_avel_workdir(tmp_path / "w", n=3)
    maps = fill_store(wd, "resnet_layer3", (10, 7, 7, 1024), seed=5)
    vav.export(wd, tmp_path / "out")
    clip = next(iter(maps))
    with zipfile.ZipFile(tmp_path / "out" / "video_feature" / f"{clip}.zip") as zf:
        array = pickle.loads(zf.read(f"{clip}.pkl"))
    assert array.shape == (10, 1024, 7, 7)
    np.testing.assert_array_equal(array[3, 100, 2, 5], maps[clip][3, 2, 5, 100])
    assert not (tmp_path / "out" / "avc_label").exists()  # no labels anywhere: not written
    assert "avc_label/ not written" in (tmp_path / "out" / "README.txt").read_text()


def test_vgg19_maps_go_out_as_stored(tmp_path):
    """The loader's 'vgg' path reads [10,7,7,512] as is; no transpose."""
    wd = vggsound_avel_workdir(tmp_path / "w", n=2)
    maps = fill_store(wd, "vgg19", (10, 7, 7, 512), seed=6)
    vav.export(wd, tmp_path / "out", visual="vgg19")
    clip = next(iter(maps))
    with zipfile.ZipFile(tmp_path / "out" / "video_feature" / f"{clip}.zip") as zf:
        np.testing.assert_array_equal(pickle.loads(zf.read(f"{clip}.pkl")), maps[clip])
