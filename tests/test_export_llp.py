"""LLP npy export/import: the AVVP loader's file naming, round trip, bad files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import InputError
from pipeline.datasets.manifest import load_manifest
from pipeline.export import llp as export_llp
from tests.fixtures_export import fill_store, llp_workdir, read_store

N = 12
SHAPES = {"vggish": (10, 128), "resnet152": (80, 2048), "r2plus1d_18": (10, 512)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("llp")
    wd = llp_workdir(root / "w", shared_data, limit=N)
    stored = {name: fill_store(wd, name, shape, seed=i, skip=5 if name == "resnet152" else 0)
              for i, (name, shape) in enumerate(SHAPES.items())}
    out = root / "out"
    export_llp.export(wd, out)
    return wd, out, stored


def spec_loader(csv: Path, base: Path, idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LLP_dataset.__getitem__: name = first column [:11]; three np.load calls."""
    row = pd.read_csv(csv, header=0, sep="\t").loc[idx, :]
    name = row.iloc[0][:11]
    return tuple(np.load(os.path.join(base, d, name + ".npy"))
                 for d in ("vggish", "res152", "r2plus1d_18"))


def test_loader_reads_the_store_rows(exported, shared_data):
    wd, out, stored = exported
    csv = shared_data / "llp" / "AVVP_train.csv"
    names = pd.read_csv(csv, header=0, sep="\t")["filename"]
    for idx in (0, 1, N - 1):  # every 5th resnet152 clip (index 4, 9) is absent
        clip = names[idx]
        audio, video, st = spec_loader(csv, out / "feats", idx)
        assert audio.shape == (10, 128) and video.shape == (80, 2048) and st.shape == (10, 512)
        assert audio.dtype == video.dtype == st.dtype == np.float32
        np.testing.assert_array_equal(audio, stored["vggish"][clip])
        np.testing.assert_array_equal(video, stored["resnet152"][clip])
        np.testing.assert_array_equal(st, stored["r2plus1d_18"][clip])


def test_absent_clips_have_no_file_and_are_listed(exported):
    wd, out, stored = exported
    manifest = load_manifest(wd)
    absent = [c for c in manifest["clip_id"] if c not in stored["resnet152"]]
    assert len(absent) == 2
    for clip in absent:
        assert not (out / "feats" / "res152" / f"{clip[:11]}.npy").exists()
        assert (out / "feats" / "vggish" / f"{clip[:11]}.npy").exists()
    lines = (out / "missing.txt").read_text().splitlines()[1:]
    assert lines == [f"feats/res152\t{c}\tnot in the store" for c in absent]


def test_round_trip(exported, tmp_path, shared_data):
    wd, out, stored = exported
    fresh = llp_workdir(tmp_path / "w", shared_data, limit=N)
    report = export_llp.import_(out, fresh)
    assert report.stored == {"vggish": N, "resnet152": N - 2, "r2plus1d_18": N}
    for name in SHAPES:
        back = read_store(fresh, name)
        assert back.keys() == stored[name].keys()
        for clip, array in stored[name].items():
            np.testing.assert_array_equal(back[clip], array)


def test_wrong_shape_names_the_file(exported, tmp_path, shared_data):
    _, out, _ = exported
    fresh = llp_workdir(tmp_path / "w", shared_data, limit=N)
    bad_dir = tmp_path / "bad" / "feats"
    (bad_dir / "r2plus1d_18").mkdir(parents=True)
    clip = load_manifest(fresh)["clip_id"][3]
    bad = bad_dir / "r2plus1d_18" / f"{clip[:11]}.npy"
    np.save(bad, np.zeros((8, 512), np.float32))
    with pytest.raises(InputError, match=rf"{bad.name}.*shape \[8, 512\] is not \[10,512\]"):
        export_llp.import_(bad_dir.parent, fresh)
    np.save(bad, np.zeros((10, 512), np.int64))
    with pytest.raises(InputError, match=rf"{bad.name}.*dtype int64"):
        export_llp.import_(bad_dir.parent, fresh)
    assert not (fresh / "features").exists()


def test_object_npy_is_refused_without_running_it(tmp_path, shared_data):
    fresh = llp_workdir(tmp_path / "w", shared_data, limit=N)
    clip = load_manifest(fresh)["clip_id"][0]
    (tmp_path / "src" / "vggish").mkdir(parents=True)
    marker = tmp_path / "ran"
    path = tmp_path / "src" / "vggish" / f"{clip[:11]}.npy"
    np.save(path, np.array([Boom(str(marker))], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="refused"):
        export_llp.import_(tmp_path / "src", fresh)
    assert not marker.exists()


class Boom:
    """Unpickling this touches a file: proof that an import executed pickled code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_two_clips_of_one_video_are_an_error(tmp_path):
    table = pd.DataFrame({"clip_id": ["abcdefghijk_0_10", "abcdefghijk_30_40"]})
    with pytest.raises(InputError, match="share the feature file abcdefghijk.npy"):
        export_llp.file_ids(table)


def test_label_csvs_equal_the_shipped_ones(tmp_path, shared_data):
    """Whole LLP lists: the weak CSVs come out byte-identical; the dense eval CSVs hold the
    same (filename, onset, offset, label) rows except those naming no val/test clip (the
    reader drops those malformed names), grouped by clip."""
    from tests.fixtures_export import make_workdir
    d = shared_data / "llp"
    wd = make_workdir(tmp_path / "w", {"name": "llp", "files": {
        "train": str(d / "AVVP_train.csv"), "val": str(d / "AVVP_val_pd.csv"),
        "test": str(d / "AVVP_test_pd.csv"), "eval_audio": str(d / "AVVP_eval_audio.csv"),
        "eval_visual": str(d / "AVVP_eval_visual.csv")}})
    export_llp.write_csvs(load_manifest(wd), tmp_path)
    for name in ("AVVP_train.csv", "AVVP_val_pd.csv", "AVVP_test_pd.csv", "AVVP_dataset_full.csv"):
        assert (tmp_path / name).read_bytes() == (d / name).read_bytes(), name
    evaluated = set(pd.concat([pd.read_csv(d / f, sep="\t") for f in
                               ("AVVP_val_pd.csv", "AVVP_test_pd.csv")])["filename"])
    for name, dropped in (("AVVP_eval_audio.csv", 8), ("AVVP_eval_visual.csv", 7)):
        shipped = pd.read_csv(d / name, sep="\t")
        ours = pd.read_csv(tmp_path / name, sep="\t")
        keep = shipped[shipped["filename"].isin(evaluated)]
        assert shipped["filename"].nunique() - keep["filename"].nunique() == dropped
        assert sorted(map(tuple, ours.itertuples(index=False))) == \
            sorted(map(tuple, keep.itertuples(index=False)))


def test_rerun_removes_files_of_clips_that_lost_their_features(tmp_path, shared_data):
    wd = llp_workdir(tmp_path / "w", shared_data, limit=3)
    fill_store(wd, "vggish", (10, 128), seed=0)
    export_llp.export(wd, tmp_path / "out", allow_missing=True)
    assert len(list((tmp_path / "out" / "feats" / "vggish").glob("*.npy"))) == 3
    shutil.rmtree(wd / "features" / "vggish")
    fill_store(wd, "vggish", (10, 128), seed=1, skip=3)  # third clip now absent
    export_llp.export(wd, tmp_path / "out", allow_missing=True)
    assert len(list((tmp_path / "out" / "feats" / "vggish").glob("*.npy"))) == 2
    assert "feats/vggish\t" in (tmp_path / "out" / "missing.txt").read_text()
