"""VGGSound: `vggsound.csv` (`ytid,start,label,split`, no header) or `test.csv`-style
lists (`<ytid>_<start:06d>.mp4,label`). Clips are 10 s from `start`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.core.errors import InputError
from pipeline.datasets.readers.text import read_table, split_clip_name, to_number

CLIP_SECONDS = 10.0


def clip_id_for(ytid: str, start_s: float) -> str:
    return f"{ytid}_{int(start_s):06d}"


def read_full_csv(path: Path) -> list[dict]:
    rows = []
    for line_no, row in read_table(path, sep=",", header=["ytid", "start", "label", "split"]):
        start = to_number(row["start"], file=path, line=line_no, field="start")
        if start < 0:
            raise InputError("start is negative", file=path, line=line_no, field="start")
        if not row["ytid"]:
            raise InputError("empty id", file=path, line=line_no, field="ytid")
        rows.append({"clip_id": clip_id_for(row["ytid"], start), "video_id": row["ytid"],
                     "start_s": start, "end_s": start + CLIP_SECONDS, "labels": [row["label"]],
                     "split": row["split"], "line": line_no, "file": str(path)})
    return rows


def read_list_csv(path: Path, split: str) -> list[dict]:
    rows = []
    for line_no, row in read_table(path, sep=",", header=["file", "label"]):
        stem = row["file"].removesuffix(".mp4")
        ytid, start = split_clip_name(stem, parts=2, file=path, line=line_no, field="file")
        start_s = to_number(start, file=path, line=line_no, field="file")
        rows.append({"clip_id": stem, "video_id": ytid, "start_s": start_s,
                     "end_s": start_s + CLIP_SECONDS, "labels": [row["label"]], "split": split,
                     "line": line_no, "file": str(path)})
    return rows


def read(files: dict[str, Path]) -> pd.DataFrame:
    """`files`: csv (the full list), or train/test lists in the `test.csv` form."""
    rows: list[dict] = []
    if "csv" in files:
        rows.extend(read_full_csv(files["csv"]))
    for split in ("train", "val", "test"):
        if split in files:
            rows.extend(read_list_csv(files[split], split))
    if not rows:
        raise InputError("VGGSound needs dataset.files.csv or dataset.files.train/test",
                         field="dataset.files")
    return pd.DataFrame(rows)
