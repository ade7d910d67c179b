"""What each original AVE script opens: file, key, dtype kind and shape, read from the
authors' code (repo and path cited per script). Shapes use N (Annotations rows), B (the
background-only videos of the weakly setting), C1 (classes + background = 29 for AVE) and
S (rows of one split's order file). Checked against a real export in
tests/test_export_original_inputs.py."""

from __future__ import annotations

AUDIO = ("audio_feature.h5", "avadataset", "f", ("N", 10, 128))
VISUAL = ("visual_feature.h5", "avadataset", "f", ("N", 10, 7, 7, 512))
ORDERS = [(f"{s}_order.h5", "order", "i", ("S",)) for s in ("train", "val", "test")]
NOISY = [("audio_feature_noisy.h5", "avadataset", "f", ("B", 10, 128)),
         ("visual_feature_noisy.h5", "avadataset", "f", ("B", 10, 7, 7, 512)),
         ("labels_noisy.h5", "avadataset", "f", ("B", "C1"))]

SCRIPTS: dict[str, list[tuple[str, str, str, tuple]]] = {
    # dataloader.AVEDataset via the --dir_* defaults (data/labels.h5, not right_labels.h5)
    "YapengTian/AVE-ECCV18 supervised_main.py + dataloader.py": [
        AUDIO, VISUAL, ("labels.h5", "avadataset", "f", ("N", 10, "C1")), *ORDERS],
    # AVE_weakly_Dataset: mil labels for training, labels.h5 as ground truth, noisy videos
    "YapengTian/AVE-ECCV18 weak_supervised_main.py + dataloader.py": [
        AUDIO, VISUAL, ("mil_labels.h5", "avadataset", "f", ("N", "C1")),
        ("labels.h5", "avadataset", "f", ("N", 10, "C1")), *NOISY, *ORDERS],
    # cross-modality localization (Keras): pooled visual vectors and its own split
    "YapengTian/AVE-ECCV18 cmm_train.py, cmm_test.py": [
        ("labels_closs.h5", "avadataset", "f", ("N", 10)),
        ("visual_feature_vec.h5", "avadataset", "f", ("N", 10, 512)), AUDIO,
        *[(f"{s}_order_match.h5", "order", "i", ("S",)) for s in ("train", "val", "test")]],
    "jasongief/PSP_CVPR_2021 fully_supervised_main.py + dataloader.py": [
        AUDIO, VISUAL, ("right_labels.h5", "avadataset", "f", ("N", 10, "C1")), *ORDERS],
    "jasongief/PSP_CVPR_2021 weakly_supervised_main.py + dataloader.py": [
        AUDIO, VISUAL, ("mil_labels.h5", "avadataset", "f", ("N", "C1")),
        ("prob_label.h5", "avadataset", "f", ("N", "C1")), *NOISY,
        ("right_labels.h5", "avadataset", "f", ("N", 10, "C1")), *ORDERS],
    "jasongief/CPSP cpsp_avel/dataset/AVE_dataset.py (AVEDataset_VGG)": [
        VISUAL, AUDIO, ("right_labels.h5", "avadataset", "f", ("N", 10, "C1")), *ORDERS],
    "jasongief/CPSP cpsp_avel/dataset/AVE_dataset_weak.py (AVEDataset_VGG)": [
        VISUAL, AUDIO, ("right_labels.h5", "avadataset", "f", ("N", 10, "C1")),
        ("mil_labels.h5", "avadataset", "f", ("N", "C1")), *ORDERS],
    # AVEDataset_ResNet also opens Annotations.txt, {split}Set.txt and per-video .pkl maps
    # (checked by reading them as that class does)
    "jasongief/CPSP cpsp_avel/dataset/AVE_dataset.py (AVEDataset_ResNet)": [
        AUDIO, ("right_labels.h5", "avadataset", "f", ("N", 10, "C1"))],
}
