"""Reads AVE features and labels in the layout the original scripts read (the files `avel
export --format ave` writes): `audio_feature.h5`, `visual_feature.h5`, `labels.h5`
(or CPSP's `right_labels.h5`), `mil_labels.h5`, `{train,val,test}_order.h5`, and for CMM
`labels_closs.h5`, `visual_feature_vec.h5` (else pooled here from the 7x7 map) and
`*_order_match.h5`; optionally the background-only `*_noisy.h5` videos for weak training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

SPLITS = ("train", "val", "test")


@dataclass
class AVEFeatures:
    audio: np.ndarray  # [N,10,128]
    video: np.ndarray  # [N,10,7,7,512]
    labels: np.ndarray  # [N,10,C+1]
    orders: dict[str, np.ndarray]  # split -> indices into N
    mil_labels: np.ndarray | None = None  # [N,C+1]
    closs: np.ndarray | None = None  # [N,10] 0/1
    match_orders: dict[str, np.ndarray] = field(default_factory=dict)
    noisy: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # audio, video, video labels

    def video_vec(self) -> np.ndarray:
        """[N,10,512] global average of the 7x7 map (what CMM reads)."""
        return self.video.mean(axis=(2, 3))


def _read(path: Path, key: str) -> np.ndarray:
    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise KeyError(f"{path}: dataset {key!r} missing (have {sorted(f.keys())})")
            return f[key][()]
    except OSError as exc:
        raise OSError(f"{path}: cannot read HDF5 ({exc})") from exc


def load_ave_dir(root: str | Path, with_noisy: bool = False) -> AVEFeatures:
    root = Path(root)
    for name in ("audio_feature.h5", "visual_feature.h5"):
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} not found (expected an AVE export directory)")
    labels_path = root / "labels.h5" if (root / "labels.h5").is_file() else root / "right_labels.h5"
    audio = _read(root / "audio_feature.h5", "avadataset")
    video = _read(root / "visual_feature.h5", "avadataset")
    labels = _read(labels_path, "avadataset")
    n = len(audio)
    if len(video) != n or len(labels) != n:
        raise ValueError(f"{root}: audio/visual/labels disagree on the number of videos "
                         f"({n}, {len(video)}, {len(labels)})")
    orders = {s: _read(root / f"{s}_order.h5", "order").astype(np.int64) for s in SPLITS}
    for split, order in orders.items():
        if len(order) and (order.min() < 0 or order.max() >= n):
            raise ValueError(f"{root / f'{split}_order.h5'}: index out of range 0..{n - 1}")
    data = AVEFeatures(audio, video, labels, orders)
    if (root / "mil_labels.h5").is_file():
        data.mil_labels = _read(root / "mil_labels.h5", "avadataset")
    if (root / "labels_closs.h5").is_file():
        data.closs = _read(root / "labels_closs.h5", "avadataset")
        data.match_orders = {s: _read(root / f"{s}_order_match.h5", "order").astype(np.int64)
                             for s in SPLITS if (root / f"{s}_order_match.h5").is_file()}
    if with_noisy and (root / "audio_feature_noisy.h5").is_file():
        data.noisy = (_read(root / "audio_feature_noisy.h5", "avadataset"),
                      _read(root / "visual_feature_noisy.h5", "avadataset"),
                      _read(root / "labels_noisy.h5", "avadataset"))
    return data


def video_labels(data: AVEFeatures) -> np.ndarray:
    """The MIL one-hot [N,C+1]; derived from the segment labels when mil_labels.h5 is absent
    (the class of the event segments; background for an all-background video)."""
    if data.mil_labels is not None:
        return data.mil_labels
    fg = data.labels[:, :, :-1]
    out = np.zeros(data.labels.shape[::2], dtype=np.float32)
    has_event = fg.max(axis=(1, 2)) > 0
    cls = fg.max(axis=1).argmax(-1)
    out[np.arange(len(out)), np.where(has_event, cls, data.labels.shape[-1] - 1)] = 1
    return out
