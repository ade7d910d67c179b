"""CPSP's ResNet path for AVE (`--vis_fea_type resnet`, the weakly run script's default):
`AVEDataset_ResNet` in jasongief/CPSP `cpsp_avel/dataset/AVE_dataset.py` reads

- `Annotations.txt` with pandas (`sep='&'`, so the header line
  `Category&VideoID&Quality&StartTime&EndTime` is required) and takes a video's row as
  `VideoID.tolist().index(name)` -- the first row of a repeated video, as in the original;
- `{split}Set.txt`, one `&`-separated annotation line per clip, VideoID in field 1;
- `<vis_maps_path>/<split>/<VideoID>.pkl`, a pickled float32 array [10,1024,7,7]
  (store `resnet_layer3`, transposed when stored channel-last).

The two text files go beside the h5 files (CPSP's `data_root`), the maps under
`resnet_maps/` (pass `--vis_maps_path <out>/resnet_maps`). The arrays are pickled with
protocol 2 and `numpy.core` names so that the numpy < 2 of the original environment reads
them.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.core import atomic
from pipeline.export import transfer

STORE = "resnet_layer3"
SHAPE = (10, 1024, 7, 7)
CHANNEL_LAST = (10, 7, 7, 1024)
HEADER = "Category&VideoID&Quality&StartTime&EndTime"
SPLITS = ("train", "val", "test")
MAPS = "resnet_maps"


class _OldNumpyPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Names numpy 2's `numpy._core` as `numpy.core`, which both numpy 1 and 2 import."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "") or ""
        if module.startswith("numpy._core"):
            self.write(pickle.GLOBAL + f"numpy.core{module[len('numpy._core'):]}\n"
                       f"{name or obj.__qualname__}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


def pickled_array(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    _OldNumpyPickler(buffer, protocol=2).dump(np.ascontiguousarray(array, dtype=np.float32))
    return buffer.getvalue()


def _line(row: pd.Series) -> str:
    return "&".join(str(row[c]) for c in ("category", "video_id", "quality")) + \
        f"&{int(row['event_start'])}&{int(row['event_end'])}"


def absent(workdir: Path, manifest: pd.DataFrame, rows: np.ndarray) -> dict[str, str]:
    if transfer.open_store(workdir, STORE) is None:
        return {MAPS: f"no '{STORE}' features in the store (avel extract "
                               f"--extractor {STORE})"}
    if not np.array_equal(np.sort(rows), np.arange(len(rows))):
        return {"Annotations.txt": "the manifest's rows are not the contiguous "
                                          "Annotations rows 0..N-1 the h5 files are indexed by"}
    return {}


def export(workdir: Path, manifest: pd.DataFrame, rows: np.ndarray, out: Path,
           report: transfer.ExportReport, provenance: dict) -> None:
    """Write `Annotations.txt`, `{split}Set.txt` and `resnet_maps/<split>/<id>.pkl`."""
    base = out
    table = manifest.assign(_row=rows).sort_values("_row")
    lines = [_line(r) for _, r in table.iterrows()]
    atomic.write_text(base / "Annotations.txt", "\n".join([HEADER, *lines]) + "\n")
    report.files.append(base / "Annotations.txt")
    for split in SPLITS:
        part = table[table["split"] == split]
        atomic.write_text(base / f"{split}Set.txt", "".join(_line(r) + "\n" for _, r in part.iterrows()))
        report.files.append(base / f"{split}Set.txt")
    reader = transfer.open_store(workdir, STORE)
    missing: list[str] = []
    written: set[tuple[str, str]] = set()
    try:
        for (_, r) in table.iterrows():
            key = (str(r["split"]), str(r["video_id"]))
            if key in written or r["split"] not in SPLITS:
                continue
            clip = str(r["clip_id"])
            if reader is None or clip not in reader:
                missing.append(clip)
                continue
            array = np.asarray(reader[clip])
            if array.shape == CHANNEL_LAST:
                array = array.transpose(0, 3, 1, 2)
            array = transfer.check_array(array, SHAPE, reader.dir, f"clip {clip}")
            path = base / MAPS / key[0] / f"{key[1]}.pkl"
            path.parent.mkdir(parents=True, exist_ok=True)
            transfer.write_clip_file(path, pickled_array(array))
            report.files.append(path)
            written.add(key)
    finally:
        if reader is not None:
            reader.close()
    report.missing[MAPS] = missing
    provenance[MAPS] = (STORE, transfer.store_attrs(reader))
