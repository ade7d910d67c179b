"""AVE: `Annotations.txt` (Category&VideoID&Quality&Start&End) and its split files.

Row order is Annotations order, because the released feature and label arrays are indexed
by it. A video that appears in several rows (45 do: one row per event category) gets one
clip per row; repeats are named `<video_id>__<k>` (k = 2, 3, …) so clip ids stay unique.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from pipeline.core.errors import InputError
from pipeline.datasets.labels import AVE_CATEGORIES
from pipeline.datasets.readers.text import read_lines, to_number

log = logging.getLogger(__name__)
FIELDS = ["category", "video_id", "quality", "event_start", "event_end"]
SPLITS = ("train", "val", "test")
CLIP_SECONDS = 10.0


def read_annotations(path: str | Path) -> pd.DataFrame:
    rows = []
    seen: dict[str, int] = {}
    first_line: dict[tuple[str, ...], int] = {}
    for line_no, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("&")]
        if line_no == 1 and cells[:2] == ["Category", "VideoID"]:
            continue  # the original file's header
        if len(cells) != len(FIELDS):
            raise InputError(f"expected {len(FIELDS)} '&'-separated fields "
                             f"({'&'.join(FIELDS)}), found {len(cells)}", file=path, line=line_no)
        category, video_id, quality, start, end = cells
        for name, value in zip(FIELDS, cells):
            if not value:
                raise InputError("empty value", file=path, line=line_no, field=name)
        start_s = to_number(start, file=path, line=line_no, field="event_start")
        end_s = to_number(end, file=path, line=line_no, field="event_end")
        if end_s <= start_s:
            # The real file has one such row (VWi2ENBuTbw, 0&0): kept as the original code
            # reads it, where it labels no segment.
            log.warning("%s line %d: event end %s is not after start %s; kept (labels no "
                        "segment)", path, line_no, end, start)
        if start_s < 0 or end_s > CLIP_SECONDS:
            raise InputError(f"event [{start}, {end}] lies outside the 10 s clip", file=path,
                             line=line_no, field="event_start" if start_s < 0 else "event_end")
        key = (category, video_id, start, end)
        if key in first_line:  # the real list has none: a repeated row is a broken file
            raise InputError(f"repeats line {first_line[key]} (same category, video and "
                             "event)", file=path, line=line_no, field="video_id")
        first_line[key] = line_no
        seen[video_id] = seen.get(video_id, 0) + 1
        clip_id = video_id if seen[video_id] == 1 else f"{video_id}__{seen[video_id]}"
        rows.append({
            "clip_id": clip_id, "video_id": video_id, "start_s": 0.0, "end_s": CLIP_SECONDS,
            "labels": [category], "category": category, "quality": quality,
            "event_start": int(start_s), "event_end": int(end_s), "row": len(rows),
            "line": line_no, "file": str(path),
        })
    _check_categories(rows, path)
    return pd.DataFrame(rows)


def _check_categories(rows: list[dict], path: str | Path) -> None:
    """A list that is mostly the official AVE categories must use only them: one stray name
    would otherwise make the class set a custom one and move every class id. Lists where at
    most half of the distinct names are official (synthetic or custom sets) keep their own."""
    official = set(AVE_CATEGORIES)
    names = {r["category"] for r in rows}
    if 2 * len(names & official) <= len(names):
        return
    for r in rows:
        if r["category"] not in official:
            raise InputError(f"unknown category {r['category']!r}: not one of the 28 AVE "
                             "categories", file=path, line=r["line"], field="category")


def read_order_files(orders_dir: str | Path, n_rows: int) -> np.ndarray:
    """Split per Annotations row from `{train,val,test}_order.h5` (key `order`)."""
    split = np.full(n_rows, "", dtype=object)
    for name in SPLITS:
        path = Path(orders_dir) / f"{name}_order.h5"
        if not path.is_file():
            raise InputError("order file not found", file=path)
        try:
            with h5py.File(path, "r") as fh:
                order = np.asarray(fh["order"][()]).astype(np.int64).ravel()
        except (OSError, KeyError) as exc:
            raise InputError(f"cannot read dataset 'order': {exc}", file=path, field="order") from None
        bad = order[(order < 0) | (order >= n_rows)]
        if bad.size:
            raise InputError(f"index {int(bad[0])} is outside the {n_rows} annotation rows",
                             file=path, field="order")
        clash = [i for i in order if split[i]]
        if clash:
            raise InputError(f"row {clash[0]} is already in split '{split[clash[0]]}'",
                             file=path, field="order")
        split[order] = name
    return split


def read_split_txt(files: dict[str, Path], table: pd.DataFrame) -> np.ndarray:
    """Split per row from `trainSet.txt`-style files: lines in Annotations format."""
    key_to_rows: dict[tuple, list[int]] = {}
    for i, r in enumerate(table.itertuples()):
        key_to_rows.setdefault((r.category, r.video_id, r.event_start, r.event_end), []).append(i)
    split = np.full(len(table), "", dtype=object)
    for name, path in files.items():
        for line_no, line in enumerate(read_lines(path), start=1):
            cells = [c.strip() for c in line.split("&")]
            if not line.strip() or cells[:2] == ["Category", "VideoID"]:
                continue
            if len(cells) != len(FIELDS):
                raise InputError(f"expected {len(FIELDS)} '&'-separated fields", file=path, line=line_no)
            key = (cells[0], cells[1], int(to_number(cells[3], file=path, line=line_no, field="event_start")),
                   int(to_number(cells[4], file=path, line=line_no, field="event_end")))
            rows = key_to_rows.get(key)
            if not rows:
                raise InputError(f"no Annotations row for video {cells[1]!r}", file=path,
                                 line=line_no, field="video_id")
            split[rows.pop(0)] = name
    return split


def read(files: dict[str, Path]) -> pd.DataFrame:
    """`files`: annotations, and orders_dir (h5 order files) or train/val/test (txt lists)."""
    if "annotations" not in files:
        raise InputError("AVE needs dataset.files.annotations (Annotations.txt)", field="dataset.files")
    table = read_annotations(files["annotations"])
    if "orders_dir" in files:
        table["split"] = read_order_files(files["orders_dir"], len(table))
    elif all(s in files for s in SPLITS):
        table["split"] = read_split_txt({s: files[s] for s in SPLITS}, table)
    else:
        table["split"] = "all"
    table["split"] = table["split"].replace("", "unassigned")
    return table
