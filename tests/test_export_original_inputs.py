"""A real AVE export holds every file each original script opens (tests/original_script_inputs.py),
under its name, key, dtype kind and shape; the files also match the released examples in
tests/data/real/ave in key, dtype and per-row shape; CPSP's ResNet path reads as
`AVEDataset_ResNet` reads it."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pandas as pd
import pytest

from pipeline.datasets.manifest import load_manifest
from pipeline.export import ave as export_ave
from tests.fixtures_export import ave_workdir, fill_store, h5, make_workdir
from tests.original_script_inputs import SCRIPTS

N, B = 24, 5


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("orig")
    wd = ave_workdir(root / "w", shared_data, limit=N)
    fill_store(wd, "vggish", (10, 128), seed=1)
    fill_store(wd, "vgg19", (10, 7, 7, 512), seed=2)
    fill_store(wd, "resnet_layer3", (10, 1024, 7, 7), seed=3)
    # the background-only videos: any work directory whose manifest lists them
    bg = make_workdir(root / "bg", {"name": "ave", "limit": B, "source": "local", "videos_dir": "v",
                                    "files": {"annotations": str(shared_data / "ave" / "Annotations.txt")}})
    fill_store(bg, "vggish", (10, 128), seed=4)
    fill_store(bg, "vgg19", (10, 7, 7, 512), seed=5)
    out = root / "out"
    report = export_ave.export(wd, out, orders_dir=shared_data / "ave", background_workdir=bg,
                               cpsp_resnet=True)
    return wd, bg, out, report


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_file_the_script_opens_is_there(exported, script):
    wd, _, out, _ = exported
    manifest = load_manifest(wd)
    sizes = {"N": N, "B": B, "C1": 29}
    for name, key, kind, shape in SCRIPTS[script]:
        assert (out / name).is_file(), f"{script}: {name} not written"
        with h5py.File(out / name, "r") as fh:
            assert key in fh, f"{script}: {name} has no {key!r}"
            ds = fh[key]
            assert ds.dtype.kind == kind, f"{name}: dtype {ds.dtype}"
            if shape == ("S",):
                split = name.split("_")[0]
                assert ds.shape == ((manifest["split"] == split).sum(),), name
                assert ds[()].max() < N
            else:
                assert ds.shape == tuple(sizes.get(d, d) for d in shape), name


def test_keys_and_dtypes_match_the_released_files(exported, shared_data):
    """Every released example in tests/data/real/ave: same key, dtype and per-row shape."""
    _, _, out, _ = exported
    released = sorted(p for p in (shared_data / "ave").glob("*.h5"))
    assert len(released) >= 9
    for path in released:
        with h5py.File(path, "r") as theirs, h5py.File(out / path.name, "r") as ours:
            assert list(ours) == list(theirs), path.name
            for key in theirs:
                assert ours[key].dtype == theirs[key].dtype, path.name
                assert ours[key].shape[1:] == theirs[key].shape[1:], path.name


def test_weakly_files_come_from_the_background_workdir(exported):
    from tests.fixtures_export import read_store
    _, bg, out, _ = exported
    stored = read_store(bg, "vggish")
    order = list(load_manifest(bg)["clip_id"])
    np.testing.assert_array_equal(h5(out / "audio_feature_noisy.h5"),
                                  np.stack([stored[c] for c in order]).astype(np.float64))
    labels = h5(out / "labels_noisy.h5")
    assert (labels[:, 28] == 1).all() and labels[:, :28].sum() == 0


def test_labels_h5_is_right_labels_and_vec_is_the_pooled_map(exported):
    _, _, out, _ = exported
    np.testing.assert_array_equal(h5(out / "labels.h5"), h5(out / "right_labels.h5"))
    np.testing.assert_allclose(h5(out / "visual_feature_vec.h5"),
                               h5(out / "visual_feature.h5").mean(axis=(2, 3)), rtol=1e-12)


def test_cpsp_resnet_path_reads_as_the_original_dataset_class(exported):
    """AVEDataset_ResNet: pandas over Annotations.txt (sep '&', header), the video name from
    field 1 of a {split}Set.txt line, its first Annotations row, then the pickled map."""
    wd, _, out, _ = exported
    from tests.fixtures_export import read_store
    stored = read_store(wd, "resnet_layer3")
    manifest = load_manifest(wd)
    ids = pd.read_csv(out / "Annotations.txt", sep="&")["VideoID"].tolist()
    assert len(ids) == N
    labels = h5(out / "right_labels.h5")
    checked = 0
    for split in ("train", "val", "test"):
        lines = (out / f"{split}Set.txt").read_text().splitlines()
        assert len(lines) == (manifest["split"] == split).sum()
        for line in lines:
            name = line.split("&")[1]
            row = ids.index(name)
            clip = manifest["clip_id"][row]
            with open(out / "resnet_maps" / split / f"{name}.pkl", "rb") as fh:
                array = pickle.load(fh)
            assert array.shape == (10, 1024, 7, 7) and array.dtype == np.float32
            np.testing.assert_array_equal(array, stored[clip])
            assert labels[row].sum() == 10
            checked += 1
    assert checked == N


def test_pickled_maps_name_numpy_core_for_numpy_1(exported):
    """numpy < 2 (the original environment) cannot import numpy._core."""
    _, _, out, _ = exported
    data = next((out / "resnet_maps").rglob("*.pkl")).read_bytes()
    assert b"numpy.core.multiarray\n_reconstruct" in data and b"numpy._core" not in data


def test_without_background_videos_the_export_fails_naming_them(tmp_path, shared_data):
    from pipeline.core.errors import InputError
    wd = ave_workdir(tmp_path / "w", shared_data, limit=6)
    fill_store(wd, "vggish", (10, 128), seed=1)
    fill_store(wd, "vgg19", (10, 7, 7, 512), seed=2)
    with pytest.raises(InputError, match="labels_noisy.h5.*--background-workdir") as err:
        export_ave.export(wd, tmp_path / "out")
    assert err.value.exit_code == 2 and not (tmp_path / "out").exists()
    report = export_ave.export(wd, tmp_path / "out", allow_missing=True)
    assert set(report.absent) == {"audio_feature_noisy.h5", "visual_feature_noisy.h5",
                                  "labels_noisy.h5"}
    missing = (tmp_path / "out" / "missing.txt").read_text()
    assert "labels_noisy.h5\t*\tnot written" in missing
    readme = (tmp_path / "out" / "README.txt").read_text()
    assert "NOT written" in readme and "*_noisy.h5: the background" not in readme


def test_missing_txt_exists_when_nothing_is_missing(exported):
    _, _, out, report = exported
    assert not report.absent and not any(report.missing.values())
    text = (out / "missing.txt").read_text()
    assert text.startswith("#") and len(text.splitlines()) == 1
