"""LLP / AVVP: tab-separated `AVVP_*.csv` files (`filename event_labels`).

Filenames are `<ytid>_<start>_<end>`, split from the right since ids hold '_' and '-'.
The dense eval CSVs (`filename onset offset event_labels`) become per-clip lists of
audio and visual events, and each of their rows must belong to a val or test clip.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from pipeline.core.errors import InputError
from pipeline.datasets.labels import LLP_CATEGORIES, SEGMENTS
from pipeline.datasets.readers.text import read_table, split_clip_name, to_number

log = logging.getLogger(__name__)
SPLIT_FILES = {"train": "train", "val": "val", "test": "test"}
MAX_SOURCE_S = 24 * 3600  # no YouTube video is longer than 12 h: times past a day are garbage


def read_split(path: Path, split: str) -> list[dict]:
    rows = []
    for line_no, row in read_table(path, sep="\t", required=["filename", "event_labels"]):
        name = row["filename"]
        ytid, start, end = split_clip_name(name, parts=3, file=path, line=line_no, field="filename")
        start_s = to_number(start, file=path, line=line_no, field="filename")
        end_s = to_number(end, file=path, line=line_no, field="filename")
        if end_s <= start_s:
            raise InputError(f"end {end} is not after start {start}", file=path, line=line_no,
                             field="filename")
        if start_s < 0 or end_s > MAX_SOURCE_S:
            raise InputError(f"times {start}..{end} are outside 0..{MAX_SOURCE_S} s of a video",
                             file=path, line=line_no, field="filename")
        labels = [label.strip() for label in row["event_labels"].split(",") if label.strip()]
        if not labels:
            raise InputError("no event labels", file=path, line=line_no, field="event_labels")
        rows.append({"clip_id": name, "video_id": ytid, "start_s": start_s, "end_s": end_s,
                     "labels": labels, "split": split, "line": line_no, "file": str(path)})
    return rows


def read_events(path: Path) -> dict[str, list[dict]]:
    events: dict[str, list[dict]] = {}
    for line_no, row in read_table(path, sep="\t",
                                   required=["filename", "onset", "offset", "event_labels"]):
        onset = to_number(row["onset"], file=path, line=line_no, field="onset")
        offset = to_number(row["offset"], file=path, line=line_no, field="offset")
        for name, value in (("onset", onset), ("offset", offset)):
            if not 0 <= value <= SEGMENTS:  # the original slices [onset:offset] of 10 seconds
                raise InputError(f"{value:g} is outside the clip's 0..{SEGMENTS} s", file=path,
                                 line=line_no, field=name)
        # offset <= onset occurs 6 times in the real audio file; the original evaluation
        # slices onset:offset, so such a row marks nothing. Kept as is.
        events.setdefault(row["filename"], []).append(
            {"label": row["event_labels"], "onset": int(onset), "offset": int(offset),
             "line": line_no, "file": str(path)})
    return events


def _check_labels(rows: list[dict], events: list[dict]) -> None:
    """Lists that mostly use the 25 official LLP classes must use only them (a stray name
    would be exported as a class of its own); custom sets keep their own names."""
    official = set(LLP_CATEGORIES)
    names = {label for r in rows for label in r["labels"]} | {e["label"] for e in events}
    if 2 * len(names & official) <= len(names):
        return
    for r in rows:
        for label in r["labels"]:
            if label not in official:
                raise InputError(f"unknown class {label!r}: not one of the 25 LLP classes",
                                 file=r["file"], line=r["line"], field="event_labels")
    for e in events:
        if e["label"] not in official:
            raise InputError(f"unknown class {e['label']!r}: not one of the 25 LLP classes",
                             file=e["file"], line=e["line"], field="event_labels")


def read(files: dict[str, Path]) -> pd.DataFrame:
    """`files`: train, val, test (required), eval_audio and eval_visual (optional)."""
    rows: list[dict] = []
    for split in SPLIT_FILES:
        if split not in files:
            raise InputError(f"LLP needs dataset.files.{split}", field=f"dataset.files.{split}")
        rows.extend(read_split(files[split], split))
    _check_labels(rows, [])
    table = pd.DataFrame(rows)
    split_of = dict(zip(table["clip_id"], table["split"]))
    for modality in ("audio", "visual"):
        column = f"{modality}_events"
        table[column] = [[] for _ in range(len(table))]
        key = f"eval_{modality}"
        if key not in files:
            continue
        by_clip = read_events(files[key])
        _check_labels(rows, [e for clip_events in by_clip.values() for e in clip_events])
        for clip_id, events in list(by_clip.items()):
            if split_of.get(clip_id) not in ("val", "test"):
                # The real files hold a few malformed names (e.g. 19jWnmYnlD8_30_400) that
                # match no clip; the original evaluation never looks them up.
                log.warning("%s line %d: %r is not a val or test clip; row ignored",
                            files[key], events[0]["line"], clip_id)
                del by_clip[clip_id]
        table[column] = [[{k: e[k] for k in ("label", "onset", "offset")} for e in by_clip.get(c, [])]
                         for c in table["clip_id"]]
    return table
