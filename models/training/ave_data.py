"""Datasets of AVE-style samples for the trainer: per video `audio` [10,128], `video`
(VGG-19 maps [10,7,7,512] or ResNet maps [10,1024,7,7]), `labels` [10,C+1] one-hot per
segment with background last, and `index` (row in the source arrays).

Two sources: in-memory arrays (`ArrayAVEDataset`, fastest, used when everything fits), and
HDF5 files read item by item (`H5AVEDataset`), opened lazily once per worker process so that
DataLoader workers never share an h5py handle. `load_original_ave` reads the files the
original code reads (`audio_feature.h5`, `visual_feature.h5`, `right_labels.h5`,
`{train,val,test}_order.h5`), and `ave_labels_from_annotations` rebuilds right_labels from
Annotations.txt when only that is available.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from models.training.pickled_arrays import read_zipped_array

# dataloader.py's class order (index 28 = background)
AVE_CLASSES = ["bell", "Male", "Bark", "aircraft", "car", "Female", "Helicopter", "Violin",
               "Flute", "Ukulele", "Fry food", "Truck", "Shofar", "Motorcycle", "guitar",
               "Train", "Clock", "Banjo", "Goat", "Baby", "Bus", "Chainsaw", "Cat", "Horse",
               "Toilet", "Rodents", "Accordion", "Mandolin"]
SEGMENTS = 10


def numpy_collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """A batch stacked by numpy: torch's CPU stack of float16 maps ran at ~17 ms per
    [10,1024,7,7] item on a 2-core machine, numpy's at ~0.5 ms. The trainer uses a
    dataset's `collate_fn` when it has one."""
    return {key: torch.from_numpy(np.stack([item[key].numpy() for item in items]))
            for key in items[0]}


class ArrayAVEDataset(Dataset):
    """Samples from in-memory arrays, restricted to `indices` (rows), in that order."""

    collate_fn = staticmethod(numpy_collate)

    def __init__(self, audio: np.ndarray, video: np.ndarray, labels: np.ndarray,
                 indices: Sequence[int] | None = None) -> None:
        if not (len(audio) == len(video) == len(labels)):
            raise ValueError(f"row counts differ: audio {len(audio)}, video {len(video)}, "
                             f"labels {len(labels)}")
        self.audio = torch.as_tensor(np.ascontiguousarray(audio))
        self.video = torch.as_tensor(np.ascontiguousarray(video))
        self.labels = torch.as_tensor(np.ascontiguousarray(labels, dtype=np.float32))
        self.indices = np.arange(len(audio)) if indices is None else np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r = int(self.indices[i])
        return {"audio": self.audio[r], "video": self.video[r], "labels": self.labels[r],
                "index": torch.tensor(r)}


class H5AVEDataset(Dataset):
    """Samples read from HDF5 on demand. `sources` maps audio/video/labels to (file, key).
    Handles are opened on first use in each process (fork-safe, worker-safe)."""

    def __init__(self, sources: dict[str, tuple[str | Path, str]], indices: Sequence[int]) -> None:
        missing = {"audio", "video", "labels"} - set(sources)
        if missing:
            raise ValueError(f"missing sources: {sorted(missing)}")
        self.sources = {k: (str(p), key) for k, (p, key) in sources.items()}
        self.indices = np.asarray(indices, dtype=np.int64)
        self._pid: int | None = None
        self._handles: dict[str, h5py.Dataset] = {}

    def _open(self) -> None:
        if self._pid != os.getpid():
            files: dict[str, h5py.File] = {}
            self._handles = {}
            for name, (path, key) in self.sources.items():
                fh = files.setdefault(path, h5py.File(path, "r"))
                self._handles[name] = fh[key]
            self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        self._open()
        r = int(self.indices[i])
        return {"audio": torch.as_tensor(np.asarray(self._handles["audio"][r])),
                "video": torch.as_tensor(np.asarray(self._handles["video"][r])),
                "labels": torch.as_tensor(np.asarray(self._handles["labels"][r], dtype=np.float32)),
                "index": torch.tensor(r)}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, None
        return state


def read_orders(directory: str | Path) -> dict[str, np.ndarray]:
    """`{train,val,test}_order.h5['order']` → row indices per split."""
    out = {}
    for split in ("train", "val", "test"):
        path = Path(directory) / f"{split}_order.h5"
        with h5py.File(path, "r") as fh:
            if "order" not in fh:
                raise KeyError(f"{path}: no dataset 'order'")
            out[split] = np.asarray(fh["order"][()], dtype=np.int64).ravel()
    return out


def ave_labels_from_annotations(path: str | Path, class_names: Sequence[str] | None = None
                                ) -> tuple[np.ndarray, list[str]]:
    """right_labels-style [N,10,C+1] from Annotations.txt (Category&VideoID&Quality&Start&End):
    segments start..end-1 get the category, the rest background (last column). Classes are
    numbered in order of first appearance unless `class_names` (full names) is given --
    the AVE file lists categories in the same order as the released labels."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("&")]
        if len(cells) != 5 or cells[:2] == ["Category", "VideoID"]:
            continue
        rows.append((cells[0], int(float(cells[3])), int(float(cells[4]))))
    names = list(class_names) if class_names is not None else list(dict.fromkeys(r[0] for r in rows))
    index = {n: k for k, n in enumerate(names)}
    labels = np.zeros((len(rows), SEGMENTS, len(names) + 1), dtype=np.float32)
    for i, (cat, start, end) in enumerate(rows):
        labels[i, :, -1] = 1.0
        for t in range(max(start, 0), min(end, SEGMENTS)):
            labels[i, t, -1] = 0.0
            labels[i, t, index[cat]] = 1.0
    return labels, names


def load_original_ave(directory: str | Path, in_memory: bool = True
                      ) -> tuple[dict[str, Dataset], int]:
    """The original AVE feature files → (datasets per split, number of foreground classes)."""
    d = Path(directory)
    orders = read_orders(d)
    sources = {"audio": (d / "audio_feature.h5", "avadataset"),
               "video": (d / "visual_feature.h5", "avadataset"),
               "labels": (d / "right_labels.h5", "avadataset")}
    for name, (p, _) in sources.items():
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p} ({name}) not found")
    with h5py.File(sources["labels"][0], "r") as fh:
        num_classes = fh["avadataset"].shape[-1] - 1
    if not in_memory:
        return {s: H5AVEDataset(sources, idx) for s, idx in orders.items()}, num_classes
    arrays = {}
    for name, (p, key) in sources.items():
        with h5py.File(p, "r") as fh:
            arrays[name] = fh[key][()]
    return {s: ArrayAVEDataset(arrays["audio"], arrays["video"], arrays["labels"], idx)
            for s, idx in orders.items()}, num_classes


def pad_audio(audio: np.ndarray, segments: int = SEGMENTS) -> np.ndarray:
    """[t,128] → [10,128]: repeat the last row when short, truncate when long (as upstream)."""
    if len(audio) < segments:
        audio = np.concatenate([audio, np.repeat(audio[-1:], segments - len(audio), axis=0)])
    return audio[:segments]


class VGGSoundAVELDataset(Dataset):
    """The released VGGSound-AVEL100k/50k layout: a meta CSV (video_id, category, split), the
    categories txt (class id = line index), and per video `{video_id}.zip` in an audio, a
    visual and an avc-label directory. Labels are built as upstream: [10, C+1] with
    label[:, class_id] = avc and label[:, -1] = 1 - avc."""

    def __init__(self, meta_csv: str | Path, categories: str | Path, audio_dir: str | Path,
                 video_dir: str | Path, label_dir: str | Path, split: str) -> None:
        meta = pd.read_csv(meta_csv)
        for col in ("video_id", "category", "split"):
            if col not in meta.columns:
                raise ValueError(f"{meta_csv}: no column {col!r}")
        names = [n.strip() for n in Path(categories).read_text(encoding="utf-8").splitlines() if n.strip()]
        self.class_of = {n: k for k, n in enumerate(names)}
        self.num_classes = len(names)
        rows = meta[meta["split"] == split].reset_index(drop=True)
        unknown = sorted(set(rows["category"]) - set(self.class_of))
        if unknown:
            raise ValueError(f"{meta_csv}: category {unknown[0]!r} is not in {categories}")
        self.video_ids = [str(v) for v in rows["video_id"]]
        self.classes = [self.class_of[c] for c in rows["category"]]
        self.dirs = (Path(audio_dir), Path(video_dir), Path(label_dir))

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        vid = self.video_ids[i]
        audio = pad_audio(read_zipped_array(self.dirs[0] / f"{vid}.zip")).astype(np.float32)
        video = read_zipped_array(self.dirs[1] / f"{vid}.zip").astype(np.float32)
        avc = read_zipped_array(self.dirs[2] / f"{vid}.zip").reshape(-1)[:SEGMENTS].astype(np.float32)
        labels = np.zeros((SEGMENTS, self.num_classes + 1), np.float32)
        labels[:, self.classes[i]] = avc
        labels[:, -1] = 1 - avc
        return {"audio": torch.as_tensor(audio), "video": torch.as_tensor(video),
                "labels": torch.as_tensor(labels), "index": torch.tensor(i)}
