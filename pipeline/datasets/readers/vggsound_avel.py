"""VGGSound-AVEL100k / 50k: the meta CSV (`category,video_id,split`, header), the
categories file (one name per line; the class id is the line index) and, when
`dataset.files.avc_labels` names it, the released per-second labels: a directory of
`<video_id>.zip` files each holding one pickled [1,10] 0/1 array, which the CPSP loader
(`_load_fea` + `_obtain_avel_label`) turns into per-second event labels. They become the
manifest's `avc` column, so `avel train --task vggsound-avel-*` trains from avel's own
features. The pickles are read by a numpy-only unpickler: a label file cannot run code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.training.pickled_arrays import read_zipped_array
from pipeline.core.errors import InputError
from pipeline.datasets.readers.text import read_lines, read_table, split_clip_name, to_number

CLIP_SECONDS = 10.0


def read_categories(path: Path) -> list[str]:
    names = [line.strip() for line in read_lines(path)]
    while names and not names[-1]:
        names.pop()
    for i, name in enumerate(names, start=1):
        if not name:
            raise InputError("empty category name", file=path, line=i)
    return names


def read(files: dict[str, Path]) -> pd.DataFrame:
    """`files`: meta (CSV), categories (txt) and optionally avc_labels (directory)."""
    for key in ("meta", "categories"):
        if key not in files:
            raise InputError(f"VGGSound-AVEL needs dataset.files.{key}", field=f"dataset.files.{key}")
    if "avc_labels" in files and not files["avc_labels"].is_dir():
        raise InputError("the avc label directory (per-video zips) does not exist",
                         file=files["avc_labels"], field="dataset.files.avc_labels")
    categories = read_categories(files["categories"])
    class_of = {name: i for i, name in enumerate(categories)}
    path = files["meta"]
    rows = []
    for line_no, row in read_table(path, sep=",", required=["category", "video_id", "split"]):
        video_id = row["video_id"].removesuffix(".mp4")
        ytid, start = split_clip_name(video_id, parts=2, file=path, line=line_no, field="video_id")
        start_s = to_number(start, file=path, line=line_no, field="video_id")
        if row["category"] not in class_of:
            raise InputError(f"category {row['category']!r} is not in {files['categories']}",
                             file=path, line=line_no, field="category")
        if row["split"] not in ("train", "val", "test"):
            raise InputError(f"split {row['split']!r} is not train, val or test", file=path,
                             line=line_no, field="split")
        entry = {"clip_id": video_id, "video_id": ytid, "start_s": start_s,
                 "end_s": start_s + CLIP_SECONDS, "labels": [row["category"]],
                 "category": row["category"], "class_id": class_of[row["category"]],
                 "split": row["split"], "line": line_no, "file": str(path)}
        if "avc_labels" in files:
            entry["avc"] = read_avc(files["avc_labels"], row["video_id"], path, line_no)
        rows.append(entry)
    return pd.DataFrame(rows)


def read_avc(directory: Path, video_id: str, meta: Path, line: int) -> list[int]:
    """The [1,10] 0/1 label of one clip, from `<directory>/<video_id>.zip` as the meta CSV
    names it (the CPSP loader's path), else without a `.mp4` suffix."""
    candidates = [directory / f"{video_id}.zip", directory / f"{video_id.removesuffix('.mp4')}.zip"]
    zip_path = next((p for p in candidates if p.is_file()), None)
    if zip_path is None:
        raise InputError(f"no avc label file {candidates[0].name} in {directory}", file=meta,
                         line=line, field="avc_labels")
    try:
        avc = read_zipped_array(zip_path)
    except Exception as exc:  # zip, pickle or content: all mean the file is not a label
        raise InputError(f"not an avc label file: {exc}", file=zip_path, field="avc_labels") from None
    if avc.size != 10 or avc.ndim > 2 or not np.isin(avc, (0, 1)).all():
        raise InputError(f"avc label: expected [1,10] of 0/1, found shape {list(avc.shape)}",
                         file=zip_path, field="avc_labels")
    return [int(v) for v in avc.reshape(10)]


def categories_for(workdir: Path, manifest: pd.DataFrame, files: dict[str, Path]) -> list[str]:
    """The class list: the dataset's categories file when there is one, else rebuilt from
    the manifest's (category, class_id) pairs, which must then cover every id."""
    if "categories" in files and files["categories"].is_file():
        return read_categories(files["categories"])
    if "class_id" not in manifest or "category" not in manifest:
        lacking = "class_id" if "category" in manifest else "category"
        raise InputError(f"no categories file (dataset.files.categories) and the manifest has no "
                         f"'{lacking}' column to rebuild the class list from; the "
                         "vggsound-avel format needs a VGGSound-AVEL manifest; nothing was written",
                         file=workdir / "manifest.parquet", field=lacking)
    pairs = dict(zip(manifest["class_id"].astype(int), manifest["category"]))
    n = max(pairs) + 1 if pairs else 0
    if sorted(pairs) != list(range(n)):
        raise InputError("the categories file is not available and the manifest does not use "
                         "every class id, so the class list cannot be rebuilt", field="categories")
    return [pairs[i] for i in range(n)]
