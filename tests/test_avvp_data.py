"""LLP labels and dense ground truth read from the real CSVs, checked against rows read by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.training.avvp_data import CATEGORIES, DenseAnnotations, label_vector, read_weak_labels, video_id


@pytest.fixture(scope="module")
def dense(shared_data) -> DenseAnnotations:
    llp = shared_data / "llp"
    return DenseAnnotations.from_csv(llp / "AVVP_eval_audio.csv", llp / "AVVP_eval_visual.csv")


def test_class_order_is_the_original_one():
    assert len(CATEGORIES) == 25
    assert CATEGORIES[:4] == ("Speech", "Car", "Cheering", "Dog")
    assert CATEGORIES[5] == "Frying_(food)"
    assert CATEGORIES[13] == "Violin_fiddle"
    assert CATEGORIES[22:] == ("Baby_cry_infant_cry", "Blender", "Clapping")


def test_weak_labels_of_real_val_rows(shared_data):
    weak = read_weak_labels(shared_data / "llp" / "AVVP_val_pd.csv")
    assert len(weak) == 649
    # Line 2: 4O9rI-FpqLg_10_20  Cheering,Speech,Clapping → indices 2, 0, 24.
    first = weak.iloc[0]
    assert first["filename"] == "4O9rI-FpqLg_10_20" and first["video_id"] == "4O9rI-FpqLg"
    assert list(np.flatnonzero(first["target"])) == [0, 2, 24]


def test_video_id_is_the_first_eleven_characters_even_with_underscores():
    assert video_id("CSWQ_HzQ_10_20") == "CSWQ_HzQ_10"  # a malformed real name
    assert video_id("AKVyIQoSyBA_131.8_141.8") == "AKVyIQoSyBA"


def test_unknown_label_names_file_line_and_field(tmp_path):
    bad = tmp_path / "weak.csv"
    bad.write_text("filename\tevent_labels\nabcdefghijk_0_10\tSpeech\nbcdefghijkl_0_10\tDgo\n")
    with pytest.raises(ValueError, match=r"weak.csv line 3 field event_labels.*'Dgo'"):
        read_weak_labels(bad)


def test_dense_ground_truth_of_a_test_clip(dense):
    # AVVP_eval_audio.csv: KSRjje7GH44_60_70  8 10 Blender / 0 8 Speech
    # AVVP_eval_visual.csv: KSRjje7GH44_60_70  0 10 Blender
    gt_a, gt_v, gt_av = dense.ground_truth("KSRjje7GH44_60_70")
    expect_a = np.zeros((25, 10))
    expect_a[23, 8:10] = 1      # Blender
    expect_a[0, 0:8] = 1        # Speech
    expect_v = np.zeros((25, 10))
    expect_v[23, :] = 1
    np.testing.assert_array_equal(gt_a, expect_a)
    np.testing.assert_array_equal(gt_v, expect_v)
    np.testing.assert_array_equal(gt_av, expect_a * expect_v)
    assert gt_av.sum() == 2     # Blender on segments 8 and 9 in both


def test_dense_rows_with_offset_not_after_onset_mark_nothing(dense):
    # 8DF2PxdT5tE_390_400 audio: 2 8 Basketball_bounce / 0 2 Speech / 7 10 Speech / 9 0 Cheering
    # visual: 2 8 Basketball_bounce / 7 8 Speech / 9 10 Speech
    gt_a, gt_v, gt_av = dense.ground_truth("8DF2PxdT5tE_390_400")
    assert list(np.flatnonzero(gt_a[6])) == [2, 3, 4, 5, 6, 7]
    assert list(np.flatnonzero(gt_a[0])) == [0, 1, 7, 8, 9]
    assert gt_a[2].sum() == 0   # Cheering 9→0 is empty, as python slicing 9:0
    assert gt_a.sum() == 11
    assert list(np.flatnonzero(gt_v[0])) == [7, 9]
    assert list(np.flatnonzero(gt_av[0])) == [7, 9]
    assert list(np.flatnonzero(gt_av[6])) == [2, 3, 4, 5, 6, 7]
    # CaC2xvdLC34_250_260 audio has "9 9 Speech": nothing for Speech.
    gt_a, _, _ = dense.ground_truth("CaC2xvdLC34_250_260")
    assert gt_a[0].sum() == 0
    assert list(np.flatnonzero(gt_a[24])) == [9]         # Clapping 9 10
    assert gt_a[9].sum() == 9 and gt_a[13].sum() == 9    # Cello, Violin 0 9


def test_clip_without_visual_rows_gets_all_zero_visual_truth(dense):
    # OWrp89_xwVw_80_90 (val) has audio rows only: Acoustic_guitar 0 10, Singing 2 4 and 8 10.
    gt_a, gt_v, gt_av = dense.ground_truth("OWrp89_xwVw_80_90")
    assert gt_v.sum() == 0 and gt_av.sum() == 0
    assert gt_a[20].sum() == 10
    assert list(np.flatnonzero(gt_a[11])) == [2, 3, 8, 9]


def test_manifest_events_give_the_same_matrices_as_the_csv(dense):
    table = pd.DataFrame({
        "clip_id": ["KSRjje7GH44_60_70"],
        "audio_events": [[{"label": "Blender", "onset": 8, "offset": 10},
                          {"label": "Speech", "onset": 0, "offset": 8}]],
        "visual_events": [[{"label": "Blender", "onset": 0, "offset": 10}]],
    })
    from_manifest = DenseAnnotations.from_manifest(table).ground_truth("KSRjje7GH44_60_70")
    for a, b in zip(from_manifest, dense.ground_truth("KSRjje7GH44_60_70")):
        np.testing.assert_array_equal(a, b)


def test_label_vector_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown LLP event label 'Lion'"):
        label_vector(["Speech", "Lion"])


def test_npy_lookup_reads_the_original_layout_and_checks_shapes(tmp_path):
    from models.training.avvp_data import npy_lookup

    dirs = [tmp_path / d for d in ("vggish", "res152", "r2plus1d_18")]
    for d, shape in zip(dirs, ((10, 128), (80, 2048), (10, 512))):
        d.mkdir()
        np.save(d / "BjCEufrlXm4.npy", np.ones(shape, dtype=np.float32))
    lookup = npy_lookup(*dirs)
    audio, v2d, v3d = lookup(video_id("BjCEufrlXm4_20_30"))
    assert audio.shape == (10, 128) and v2d.shape == (80, 2048) and v3d.shape == (10, 512)
    np.save(dirs[1] / "BjCEufrlXm4.npy", np.ones((82, 2048), dtype=np.float32))
    with pytest.raises(ValueError, match=r"res152/BjCEufrlXm4.npy: shape \(82, 2048\)"):
        lookup("BjCEufrlXm4")
    with pytest.raises(FileNotFoundError, match="vggish/zzzzzzzzzzz.npy"):
        lookup("zzzzzzzzzzz")


def _write_features(feats, video_ids, rng):
    for d, shape in (("vggish", (10, 128)), ("res152", (80, 2048)), ("r2plus1d_18", (10, 512))):
        (feats / d).mkdir(parents=True, exist_ok=True)
        for vid in video_ids:
            np.save(feats / d / f"{vid}.npy", rng.standard_normal(shape).astype(np.float32))


def test_original_splits_read_the_exported_layout_and_skip_clips_without_features(
        shared_data, tmp_path, caplog):
    from models.training.avvp_data import original_splits

    root = tmp_path / "data"
    root.mkdir()
    llp = shared_data / "llp"
    for name in ("AVVP_train.csv", "AVVP_eval_audio.csv", "AVVP_eval_visual.csv"):
        (root / name).write_bytes((llp / name).read_bytes())
    # Small val/test lists: real rows, two with features and one without.
    (root / "AVVP_val_pd.csv").write_text(
        "filename\tevent_labels\n8DF2PxdT5tE_390_400\tBasketball_bounce,Cheering,Speech\n"
        "OWrp89_xwVw_80_90\tAcoustic_guitar,Singing\n")
    (root / "AVVP_test_pd.csv").write_text(
        "filename\tevent_labels\nKSRjje7GH44_60_70\tBlender,Speech\n")
    _write_features(root / "feats", ["8DF2PxdT5tE", "KSRjje7GH44"], np.random.default_rng(0))
    splits = original_splits(root)
    assert len(splits["train"]) == 0 and len(splits["val"]) == 1 and len(splits["test"]) == 1
    assert "val: 1 of 2 clips have no features" in caplog.text
    item = splits["test"][0]
    assert item["audio"].shape == (10, 128) and item["video_s"].shape == (80, 2048)
    assert list(np.flatnonzero(item["label"])) == [0, 23]
    assert list(np.flatnonzero(item["gt_a"][23])) == [8, 9]
    assert item["gt_v"][23].sum() == 10


def test_manifest_splits_use_clip_ids_and_manifest_events():
    from models.training.avvp_data import manifest_splits

    table = pd.DataFrame({
        "clip_id": ["a_b-cdefghi_0_10", "KSRjje7GH44_60_70"],
        "labels": [["Dog"], ["Blender", "Speech"]],
        "split": ["train", "test"],
        "audio_events": [[], [{"label": "Blender", "onset": 8, "offset": 10}]],
        "visual_events": [[], []],
    })
    clips = list(table["clip_id"])
    audio = {c: np.full((10, 128), float(i)) for i, c in enumerate(clips)}
    v2d = {c: np.zeros((80, 2048)) for c in clips}
    v3d = {c: np.zeros((10, 512)) for c in clips}
    splits = manifest_splits(table, audio, v2d, v3d)
    assert len(splits["train"]) == 1 and len(splits["val"]) == 0
    test = splits["test"][0]
    assert test["audio"][0, 0] == 1.0
    assert list(np.flatnonzero(test["gt_a"][23])) == [8, 9] and test["gt_v"].sum() == 0


def test_datasets_pickle_for_dataloader_workers():
    import pickle

    from models.training.avvp_data import AvvpFeatures, MappingFeatures, NpyFeatures

    weak = pd.DataFrame({"filename": ["BjCEufrlXm4_20_30"], "target": [label_vector(["Speech"])]})
    for lookup, key_of in ((NpyFeatures("a", "b", "c"), video_id),
                           (MappingFeatures({}, {}, {}), str)):
        ds = pickle.loads(pickle.dumps(AvvpFeatures(weak, lookup, key_of=key_of)))
        assert len(ds) == 1 and ds.key_of("BjCEufrlXm4_20_30") in ("BjCEufrlXm4", "BjCEufrlXm4_20_30")
