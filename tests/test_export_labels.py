"""Labels built from the manifest against the label files the AVE authors shipped."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import InputError
from pipeline.datasets import labels
from pipeline.datasets.readers import ave, llp


@pytest.fixture(scope="module")
def ave_table(shared_data):
    return ave.read({"annotations": shared_data / "ave" / "Annotations.txt",
                     "orders_dir": shared_data / "ave"})


def _shipped(shared_data, name):
    with h5py.File(shared_data / "ave" / name, "r") as fh:
        return fh["avadataset"][()]


def test_mil_labels_equal_shipped_file(ave_table, shared_data):
    shipped = _shipped(shared_data, "mil_labels.h5")
    built = labels.ave_mil_labels(ave_table)
    assert built.shape == shipped.shape == (4143, 29)
    assert built.dtype == shipped.dtype == np.float32
    np.testing.assert_array_equal(built, shipped)


def test_event_indicator_equals_shipped_labels_closs(ave_table, shared_data):
    shipped = _shipped(shared_data, "labels_closs.h5")
    built = labels.ave_event_indicator(ave_table)
    assert built.shape == shipped.shape == (4143, 10)
    assert built.dtype == shipped.dtype
    np.testing.assert_array_equal(built, shipped)


def test_segment_labels_agree_with_both_shipped_files(ave_table, shared_data):
    """right_labels.h5 is not shipped here; its two projections are: the foreground part
    summed over classes is labels_closs, and the class of every event second is the
    mil_labels class."""
    seg = labels.ave_segment_labels(ave_table)
    assert seg.shape == (4143, 10, 29) and seg.dtype == np.float32
    np.testing.assert_array_equal(seg.sum(-1), np.ones((4143, 10)))
    np.testing.assert_array_equal(seg[..., :28].sum(-1), _shipped(shared_data, "labels_closs.h5"))
    np.testing.assert_array_equal(seg[..., 28], 1 - _shipped(shared_data, "labels_closs.h5"))
    mil = _shipped(shared_data, "mil_labels.h5")
    event = seg[..., :28].sum(-1) > 0
    np.testing.assert_array_equal(seg[..., :28].argmax(-1)[event],
                                  np.broadcast_to(mil.argmax(-1)[:, None], (4143, 10))[event])


def test_segment_labels_row_by_hand(ave_table):
    # line 2 of Annotations.txt: Church bell&MH3m4AwEcRY&good&6&8 -> seconds 6 and 7
    seg = labels.ave_segment_labels(ave_table)[1]
    expected = np.zeros((10, 29), np.float32)
    expected[:, 28] = 1
    expected[6:8, 28] = 0
    expected[6:8, 0] = 1
    np.testing.assert_array_equal(seg, expected)


def test_zero_length_event_row_is_all_background_but_keeps_its_class(ave_table):
    i = int(np.flatnonzero(ave_table["video_id"] == "VWi2ENBuTbw")[0])
    assert labels.ave_segment_labels(ave_table)[i, :, 28].tolist() == [1.0] * 10
    assert labels.ave_mil_labels(ave_table)[i, 0] == 1.0


def test_classes_are_official_order(ave_table):
    assert labels.ave_classes(ave_table) == list(dict.fromkeys(ave_table["category"]))
    assert labels.ave_classes(ave_table)[27] == "Mandolin"
    # a slice with a few categories still gets the full 28 + background layout
    assert labels.ave_segment_labels(ave_table.iloc[:5]).shape == (5, 10, 29)


def test_unknown_class_is_named(ave_table):
    with pytest.raises(InputError, match="manifest row 0: 'Church bell' is not one of the 1"):
        labels.ave_segment_labels(ave_table.iloc[:3], classes=["Bark"])


def test_prob_labels_are_time_average(ave_table):
    prob = labels.ave_prob_labels(ave_table)
    assert prob.shape == (4143, 29)
    # Church bell 6..8 -> 0.2 on class 0, 0.8 on background
    np.testing.assert_allclose(prob[1, [0, 28]], [0.2, 0.8], rtol=1e-6)
    np.testing.assert_allclose(prob.sum(1), 1.0, rtol=1e-6)


def test_split_orders_match_shipped_order_sets(ave_table, shared_data):
    orders = labels.ave_split_orders(ave_table)
    for split, n in (("train", 3339), ("val", 402), ("test", 402)):
        with h5py.File(shared_data / "ave" / f"{split}_order.h5", "r") as fh:
            shipped = fh["order"][()]
        assert len(orders[split]) == n
        np.testing.assert_array_equal(orders[split], np.sort(shipped))


def test_llp_weak_labels_in_official_order(shared_data):
    files = {s: shared_data / "llp" / f for s, f in
             (("train", "AVVP_train.csv"), ("val", "AVVP_val_pd.csv"), ("test", "AVVP_test_pd.csv"),
              ("eval_audio", "AVVP_eval_audio.csv"))}
    table = llp.read(files)
    weak = labels.llp_weak_labels(table)
    assert weak.shape == (11849, 25)
    # independent reference: parse the CSV text ourselves
    raw = pd.read_csv(files["train"], sep="\t", header=0)
    first = raw.iloc[0]
    expected = np.zeros(25, np.float32)
    for name in first["event_labels"].split(","):
        expected[labels.LLP_CATEGORIES.index(name)] = 1
    np.testing.assert_array_equal(weak[0], expected)
    # Speech is class 0 and appears in 5978 clips (avvp spec)
    assert int(weak[:, 0].sum()) == 5978
    dense = labels.llp_segment_labels(table, "audio")
    assert dense.shape == (11849, 25, 10)
    assert dense[(table["split"] == "train").to_numpy()].sum() == 0


def test_vggsound_avel_labels_follow_obtain_avel_label():
    avc = np.array([[0, 1, 1, 0, 0, 0, 0, 0, 0, 1]], np.float32)
    out = labels.vggsound_avel_labels([5], avc[None], n_classes=141)
    assert out.shape == (1, 10, 142)
    np.testing.assert_array_equal(out[0, :, 5], avc[0])
    np.testing.assert_array_equal(out[0, :, 141], 1 - avc[0])
    assert out[0].sum() == 10
    weak = labels.vggsound_avel_weak_labels([5, 140])
    assert weak.shape == (2, 141) and weak[1, 140] == 1 and weak.sum() == 2


def test_background_labels_equal_shipped_labels_noisy(shared_data):
    shipped = _shipped(shared_data, "labels_noisy.h5")
    built = labels.ave_background_labels(len(shipped))
    assert built.dtype == shipped.dtype and built.shape == (178, 29)
    np.testing.assert_array_equal(built, shipped)
