"""VGGSound-AVEL100k / 50k: the meta CSV (`category,video_id,split`, header) and the
categories file (one name per line; the class id is the line index)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
    """`files`: meta (CSV) and categories (txt)."""
    for key in ("meta", "categories"):
        if key not in files:
            raise InputError(f"VGGSound-AVEL needs dataset.files.{key}", field=f"dataset.files.{key}")
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
        rows.append({"clip_id": video_id, "video_id": ytid, "start_s": start_s,
                     "end_s": start_s + CLIP_SECONDS, "labels": [row["category"]],
                     "category": row["category"], "class_id": class_of[row["category"]],
                     "split": row["split"], "line": line_no, "file": str(path)})
    return pd.DataFrame(rows)
