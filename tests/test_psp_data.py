"""The real AVE label/order files (tests/data/real/ave) through our readers and datasets."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from models.training.ave_data import (
    AVE_CLASSES,
    ArrayAVEDataset,
    H5AVEDataset,
    ave_labels_from_annotations,
    read_orders,
)
from pipeline.commands.init import init_workdir
from pipeline.core.config import load_config
from pipeline.datasets.manifest import build_manifest
from pipeline.train.stage import segment_labels


@pytest.fixture(scope="module")
def ave_labels(shared_data):
    return ave_labels_from_annotations(shared_data / "ave" / "Annotations.txt")


def test_real_ave_labels_have_28_classes_plus_background(ave_labels, shared_data):
    labels, names = ave_labels
    assert labels.shape == (4143, 10, 29)
    assert len(names) == 28 == len(AVE_CLASSES)
    assert np.all(labels.sum(-1) == 1)  # exactly one class (or background) per second
    # labels_closs.h5 is the released per-second event indicator: equal to ours everywhere
    with h5py.File(shared_data / "ave" / "labels_closs.h5") as fh:
        closs = fh["avadataset"][()]
    assert np.array_equal((labels[:, :, -1] == 0).astype(np.float32), closs)


def test_class_order_matches_released_mil_labels(ave_labels, shared_data):
    labels, names = ave_labels
    with h5py.File(shared_data / "ave" / "mil_labels.h5") as fh:
        mil = fh["avadataset"][()]
    fg = labels[:, :, :-1].max(1)
    has_event = fg.sum(-1) > 0  # one row (0&0) labels no second
    assert has_event.sum() >= 4142
    assert np.array_equal(fg[has_event], mil[has_event, :-1])
    # the spec's short names follow the same order ("bell" ↔ "Church bell", ...)
    assert names[0] == "Church bell" and AVE_CLASSES[0] == "bell"
    assert names[2] == "Bark" and AVE_CLASSES[2] == "Bark"


def test_real_orders_split_3339_402_402(shared_data):
    orders = read_orders(shared_data / "ave")
    assert {k: len(v) for k, v in orders.items()} == {"train": 3339, "val": 402, "test": 402}
    allrows = np.concatenate(list(orders.values()))
    assert len(np.unique(allrows)) == 4143 and allrows.min() == 0 and allrows.max() == 4142


def test_manifest_labels_equal_annotation_labels(tmp_path, shared_data, ave_labels):
    wd = tmp_path / "wd"
    init_workdir(wd, "ave")
    cfg = (wd / "avel.yaml").read_text()
    cfg = cfg.replace("data/Annotations.txt", str(shared_data / "ave" / "Annotations.txt"))
    cfg = cfg.replace("orders_dir: data", f"orders_dir: {shared_data / 'ave'}")
    (wd / "avel.yaml").write_text(cfg)
    manifest = build_manifest(wd, load_config(wd))
    labels, names = segment_labels(manifest)
    assert names == ave_labels[1]
    assert np.array_equal(labels, ave_labels[0])
    assert (manifest["split"] == "train").sum() == 3339


def test_h5_dataset_is_worker_safe_and_equals_arrays(tmp_path, ave_labels):
    labels = ave_labels[0][:12]
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(12, 10, 128)).astype(np.float32)
    video = rng.normal(size=(12, 10, 7, 7, 8)).astype(np.float32)  # narrow maps: a data test
    with h5py.File(tmp_path / "f.h5", "w") as fh:
        fh["a"], fh["v"], fh["l"] = audio, video, labels
    rows = [5, 0, 7, 3]
    h5 = H5AVEDataset({"audio": (tmp_path / "f.h5", "a"), "video": (tmp_path / "f.h5", "v"),
                       "labels": (tmp_path / "f.h5", "l")}, rows)
    mem = ArrayAVEDataset(audio, video, labels, rows)
    got = list(DataLoader(h5, batch_size=2, num_workers=2))
    want = list(DataLoader(mem, batch_size=2))
    for g, w in zip(got, want):
        for k in ("audio", "video", "labels", "index"):
            assert torch.equal(g[k], w[k])
    assert [int(i) for b in got for i in b["index"]] == rows


def test_train_stage_reads_original_ave_files(tmp_path, shared_data):
    """train.original_ave_dir: the released file names/keys, real order files, real labels."""
    import shutil

    from pipeline.core.config import load_config
    from pipeline.train.stage import load_training_data
    labels, _ = ave_labels_from_annotations(shared_data / "ave" / "Annotations.txt")
    d = tmp_path / "ave"
    d.mkdir()
    for split in ("train", "val", "test"):
        shutil.copy(shared_data / "ave" / f"{split}_order.h5", d)
    with h5py.File(d / "right_labels.h5", "w") as fh:
        fh["avadataset"] = labels
    with h5py.File(d / "audio_feature.h5", "w") as fh:
        fh.create_dataset("avadataset", shape=(4143, 10, 128), dtype="f8", fillvalue=0.5)
    with h5py.File(d / "visual_feature.h5", "w") as fh:  # allocated lazily: cheap on disk
        fh.create_dataset("avadataset", shape=(4143, 10, 7, 7, 512), dtype="f8", fillvalue=0.25,
                          chunks=(1, 10, 7, 7, 512))
    wd = tmp_path / "wd"
    init_workdir(wd, "ave")
    cfg = load_config(wd)
    cfg.train.original_ave_dir = str(d)
    cfg.train.in_memory = "never"
    data = load_training_data(wd, cfg)
    assert data.num_classes == 28 and data.class_names[-1] == "background"
    assert {k: len(v) for k, v in data.datasets.items()} == {"train": 3339, "val": 402, "test": 402}
    item = data.datasets["test"][0]
    row = int(read_orders(d)["test"][0])
    assert int(item["index"]) == row
    assert torch.equal(item["labels"], torch.as_tensor(labels[row]))
    assert item["video"].shape == (10, 7, 7, 512) and float(item["audio"][0, 0]) == 0.5


def test_vggsound_avel_zip_reader(tmp_path):
    import pickle
    import zipfile

    from models.training.ave_data import VGGSoundAVELDataset, read_zipped_array

    def put(directory, vid, arr):
        directory.mkdir(exist_ok=True)
        with zipfile.ZipFile(directory / f"{vid}.zip", "w") as zf:
            zf.writestr(f"{vid}.pkl", pickle.dumps(arr))

    (tmp_path / "cats.txt").write_text("dog\ncat\nbird\n")
    (tmp_path / "meta.csv").write_text("video_id,category,split\nv1,cat,train\nv2,bird,test\n")
    rng = np.random.default_rng(0)
    a1 = rng.normal(size=(7, 128))  # short: padded by repeating the last row
    put(tmp_path / "a", "v1", a1)
    put(tmp_path / "v", "v1", rng.normal(size=(10, 1024, 7, 7)).astype(np.float32))
    put(tmp_path / "l", "v1", np.array([[0, 0, 1, 1, 1, 0, 0, 0, 0, 0]]))  # [1,10]
    ds = VGGSoundAVELDataset(tmp_path / "meta.csv", tmp_path / "cats.txt", tmp_path / "a",
                             tmp_path / "v", tmp_path / "l", "train")
    item = ds[0]
    assert item["audio"].shape == (10, 128)
    assert np.allclose(item["audio"][7:].numpy(), np.float32(a1[-1]))
    assert item["labels"].argmax(-1).tolist() == [3, 3, 1, 1, 1, 3, 3, 3, 3, 3]  # cat = 1, bg = 3
    # a pickle that is not a plain array is refused, not executed
    put(tmp_path / "bad", "x", {"not": "an array"})
    with pytest.raises(ValueError, match="not a numeric array"):
        read_zipped_array(tmp_path / "bad" / "x.zip")
    put(tmp_path / "bad", "y", print)  # a global reference: never resolved
    with pytest.raises(pickle.UnpicklingError, match="refusing builtins.print"):
        read_zipped_array(tmp_path / "bad" / "y.zip")


def _zip_pickle(path, blob):
    import zipfile
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(path.stem + ".pkl", blob)


@pytest.mark.parametrize("protocol", [0, 1, 2, 4])  # 5 (out-of-band buffers) is not read
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "int64"])
def test_zipped_arrays_of_every_pickle_protocol_load(tmp_path, protocol, dtype):
    """avel's vggsound-avel export writes protocol 2 (bytes via _codecs.encode), like the
    Python 2-era originals; the safe reader must give back the same array."""
    import pickle

    from models.training.ave_data import read_zipped_array
    arr = (np.arange(2 * 10 * 3).reshape(2, 10, 3) * 0.37).astype(dtype)
    _zip_pickle(tmp_path / "x.zip", pickle.dumps(arr, protocol=protocol))
    got = read_zipped_array(tmp_path / "x.zip")
    assert got.dtype == arr.dtype
    np.testing.assert_array_equal(got, arr)


def test_codecs_encode_is_only_a_latin1_bytes_rebuilder(tmp_path):
    """Allowing `_codecs.encode` for protocol 2 must not let a pickle call other codecs or
    reach anything else: each of these is refused and runs nothing."""
    import pickle

    from models.training.ave_data import read_zipped_array
    marker = tmp_path / "ran"
    attacks = {
        # os.system by name: never resolved
        "system": b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.",
        # _codecs.encode with another codec than latin1
        "rot13": b"c_codecs\nencode\n(S'abc'\nS'rot13'\ntR.",
        # _codecs.encode on a non-str
        "nonstr": b"c_codecs\nencode\n(I1\nS'latin1'\ntR.",
        # _codecs.decode is not allowed at all
        "decode": b"c_codecs\ndecode\n(S'abc'\nS'latin1'\ntR.",
    }
    for name, blob in attacks.items():
        _zip_pickle(tmp_path / f"{name}.zip", blob)
        with pytest.raises((pickle.UnpicklingError, ValueError)):
            read_zipped_array(tmp_path / f"{name}.zip")
    assert not marker.exists()
    # bytes rebuilt by the allowed call are still only bytes, not an array
    _zip_pickle(tmp_path / "bytes.zip", b"c_codecs\nencode\n(S'abc'\nS'latin1'\ntR.")
    with pytest.raises(ValueError, match="not a numeric array"):
        read_zipped_array(tmp_path / "bytes.zip")
