"""The AVE files beyond the fully-supervised set: the weakly setting's background videos, the
cross-modality localization (CMM) inputs, and the names AVE-ECCV18 opens.

- `labels.h5`: AVE-ECCV18 (`supervised_main.py`, `weak_supervised_main.py`) opens the
  per-second labels under this name; PSP and CPSP open the same array as `right_labels.h5`.
- `audio_feature_noisy.h5` [n,10,128], `visual_feature_noisy.h5` [n,10,7,7,512],
  `labels_noisy.h5` [n,C+1] (background column only): the background-only videos that
  AVE-ECCV18's and PSP's weakly training appends (178 in the release). The release ships
  them only as features, with no id list; avel makes them from a second work directory
  whose manifest lists the background videos (`--background-workdir`, or
  `dataset.files.background_workdir` in avel.yaml), extracted like the main one. Its
  manifest order is the row order.
- `visual_feature_vec.h5` [N,10,512]: the VGG-19 pool5 maps globally average-pooled over
  7x7, the vectors AVE-ECCV18's README says CMM (`cmm_train.py`, `cmm_test.py`) uses.
- `{train,val,test}_order_match.h5` (key `order`): CMM's own split. It is not derivable
  from the annotations; the dataset's own files are copied when they are at hand in
  `orders_dir` and fit the rows, otherwise the ordinary split orders are written (and
  README.txt says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np

from pipeline.core import atomic
from pipeline.core.safe_hdf5 import open_checked
from pipeline.datasets import labels
from pipeline.datasets.manifest import load_manifest
from pipeline.export import transfer

KEY = "avadataset"
SPLITS = ("train", "val", "test")
NOISY_FEATURES: dict[str, tuple[str, tuple[int, ...]]] = {
    "audio_feature_noisy.h5": ("vggish", (10, 128)),
    "visual_feature_noisy.h5": ("vgg19", (10, 7, 7, 512)),
}
NOISY_LABELS = "labels_noisy.h5"
VISUAL_VEC = "visual_feature_vec.h5"


def write_h5(path: Path, key: str, data: np.ndarray) -> Path:
    with atomic.atomic_path(path) as temp:
        with h5py.File(temp, "w") as fh:
            fh.create_dataset(key, data=data)
    return path


def write_rows(path: Path, reader: transfer.store.FeatureReader | None, clip_ids: Sequence[str],
               rows: np.ndarray, n: int, shape: tuple[int, ...], out_shape: tuple[int, ...],
               dtype: str, missing: list[str],
               transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Path:
    """One `avadataset` file of `n` rows; clip i of `clip_ids` goes to row `rows[i]`, a clip
    without features stays a zero row (and goes into `missing`). Memory: one clip."""
    with atomic.atomic_path(path) as temp:
        with h5py.File(temp, "w") as fh:
            ds = fh.create_dataset(KEY, shape=(n, *out_shape), dtype=dtype, fillvalue=0,
                                   chunks=(1, *out_shape) if n else None)
            for r, row in zip(rows, transfer.iter_rows(reader, clip_ids, shape, missing)):
                if row is not None:
                    ds[r] = transform(row) if transform else row
    return path


def background_absent(background_workdir: Path | None) -> dict[str, str]:
    """The weakly files that cannot be made, and why."""
    names = [*NOISY_FEATURES, NOISY_LABELS]
    if background_workdir is None:
        why = ("no background-only videos: set dataset.files.background_workdir in avel.yaml "
               "(what `avel run` reads) or pass `avel export --background-workdir`: a work "
               "directory whose manifest lists them (see README)")
        return dict.fromkeys(names, why)
    absent = {}
    for filename, (name, _) in NOISY_FEATURES.items():
        if transfer.open_store(background_workdir, name) is None:
            absent[filename] = f"no '{name}' features in {background_workdir}"
    return absent


def export_background(background_workdir: Path, out: Path, n_classes: int, dtype: str,
                      report: transfer.ExportReport, provenance: dict) -> None:
    """The three `*_noisy.h5` files from the background work directory's store."""
    clip_ids = transfer.manifest_order(load_manifest(background_workdir))
    n = len(clip_ids)
    for filename, (name, shape) in NOISY_FEATURES.items():
        if filename in report.absent:
            continue
        missing: list[str] = []
        reader = transfer.open_store(background_workdir, name)
        try:
            report.files.append(write_rows(out / filename, reader, clip_ids, np.arange(n), n,
                                           shape, shape, dtype, missing))
        finally:
            if reader is not None:
                reader.close()
        report.missing[filename] = missing
        provenance[filename] = (name, {**transfer.store_attrs(reader),
                                       "work directory": str(background_workdir)})
    report.files.append(write_h5(out / NOISY_LABELS, KEY,
                                 labels.ave_background_labels(n, n_classes)))


def pooled(row: np.ndarray) -> np.ndarray:
    """[10,7,7,512] → [10,512]: global average pooling over the 7x7 map."""
    return np.asarray(row, dtype=np.float64).mean(axis=(1, 2))


def match_orders(orders_dir: Path | None, n: int,
                 split_orders: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """CMM's split and where it came from."""
    found = {}
    if orders_dir is not None:
        for split in SPLITS:
            path = Path(orders_dir) / f"{split}_order_match.h5"
            if not path.is_file():
                break
            with open_checked(path, what="order file") as fh:  # nothing from outside it
                order = np.asarray(fh["order"][()], dtype=np.int64).ravel() if "order" in fh else None
            if order is None or not len(order) or order.min() < 0 or order.max() >= n:
                break
            found[split] = order
    if len(found) == len(SPLITS):
        return found, f"order_match files: copied from {orders_dir} (the dataset's own CMM split)"
    return ({s: np.asarray(o, dtype=np.int64) for s, o in split_orders.items()},
            "order_match files: the dataset's own CMM split was not in orders_dir or does "
            "not fit these rows; written as the ordinary split orders")
