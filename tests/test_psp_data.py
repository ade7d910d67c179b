"""The real AVE label/order files (shared/data/ave) through our readers and datasets."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from models.ave_data import (AVE_CLASSES, ArrayAVEDataset, H5AVEDataset, ave_labels_from_annotations,
                             read_orders)
from pipeline.commands.init import init_workdir
from pipeline.config import load_config
from pipeline.manifest import build_manifest
from pipeline.train_stage import segment_labels


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
