"""LLP (AVVP) labels as the original code encodes them, and the dense evaluation ground truth.

Class order is the one hard-coded (twice, identically) in AVVP-ECCV20: neither
alphabetical nor by frequency, so every label vector, matrix row and checkpoint head depends
on it. Dense ground truth follows `main_avvp.eval`: for each row of the eval CSV whose
filename equals the clip, `GT[class, int(onset):int(offset)] = 1` (python slicing, so a row
with offset <= onset marks nothing); clips absent from a CSV get an all-zero matrix.

Lives in `models/` (no pipeline import): it reads the CSVs with pandas, or takes the
per-clip event lists the LLP manifest already holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
SPLIT_CSV = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
EVAL_CSV = ("AVVP_eval_audio.csv", "AVVP_eval_visual.csv")
FEATURE_DIRS = ("vggish", "res152", "r2plus1d_18")

CATEGORIES: tuple[str, ...] = (
    "Speech", "Car", "Cheering", "Dog", "Cat", "Frying_(food)", "Basketball_bounce",
    "Fire_alarm", "Chainsaw", "Cello", "Banjo", "Singing", "Chicken_rooster", "Violin_fiddle",
    "Vacuum_cleaner", "Baby_laughter", "Accordion", "Lawn_mower", "Motorcycle", "Helicopter",
    "Acoustic_guitar", "Telephone_bell_ringing", "Baby_cry_infant_cry", "Blender", "Clapping",
)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CATEGORIES)}
N_SEGMENTS = 10


def class_index(label: str, *, where: str = "") -> int:
    try:
        return CLASS_INDEX[label]
    except KeyError:
        at = f"{where}: " if where else ""
        raise ValueError(f"{at}unknown LLP event label {label!r}; expected one of the 25 "
                         f"classes ({', '.join(CATEGORIES[:3])}, ...)") from None


def label_vector(labels: Iterable[str], *, where: str = "") -> np.ndarray:
    """Multi-hot [25] float vector (the original's `ids_to_multinomial`)."""
    y = np.zeros(len(CATEGORIES))
    for label in labels:
        y[class_index(label, where=where)] = 1
    return y


def video_id(filename: str) -> str:
    """Features are keyed by the first 11 characters (the YouTube id) of the filename."""
    return filename[:11]


def read_weak_labels(path: str | Path) -> pd.DataFrame:
    """`AVVP_{train,val_pd,test_pd}.csv` → DataFrame(filename, video_id, labels, target).

    Labels are comma-separated; an unknown label is an error naming file and line.
    """
    path = Path(path)
    table = pd.read_csv(path, sep="\t", header=0, dtype=str, keep_default_na=False)
    missing = {"filename", "event_labels"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    rows = []
    for i, (name, labels) in enumerate(zip(table["filename"], table["event_labels"])):
        where = f"{path} line {i + 2} field event_labels"
        names = [x for x in labels.split(",") if x]
        if not names:
            raise ValueError(f"{where}: no event label")
        rows.append({"filename": name, "video_id": video_id(name), "labels": names,
                     "target": label_vector(names, where=where)})
    return pd.DataFrame(rows, columns=["filename", "video_id", "labels", "target"])


def dense_matrix(events: Iterable[Mapping], *, where: str = "") -> np.ndarray:
    """[25, 10] 0/1 float matrix from events {label, onset, offset} (offset exclusive)."""
    gt = np.zeros((len(CATEGORIES), N_SEGMENTS))
    for event in events:
        row = class_index(str(event["label"]), where=where)
        gt[row, int(event["onset"]):int(event["offset"])] = 1
    return gt


class DenseAnnotations:
    """The dense eval CSVs, indexed by filename, answering `ground_truth(filename)`."""

    def __init__(self, audio: Mapping[str, list[dict]], visual: Mapping[str, list[dict]],
                 sources: tuple[str, str] = ("audio", "visual")) -> None:
        self.audio = dict(audio)
        self.visual = dict(visual)
        self.sources = sources

    @staticmethod
    def _read(path: Path) -> dict[str, list[dict]]:
        table = pd.read_csv(path, sep="\t", header=0)
        missing = {"filename", "onset", "offset", "event_labels"} - set(table.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        by_name: dict[str, list[dict]] = {}
        for i, row in enumerate(table.itertuples(index=False)):
            by_name.setdefault(str(row.filename), []).append(
                {"label": row.event_labels, "onset": row.onset, "offset": row.offset,
                 "line": i + 2})
        return by_name

    @classmethod
    def from_csv(cls, audio_csv: str | Path, visual_csv: str | Path) -> DenseAnnotations:
        audio_csv, visual_csv = Path(audio_csv), Path(visual_csv)
        return cls(cls._read(audio_csv), cls._read(visual_csv), (str(audio_csv), str(visual_csv)))

    @classmethod
    def from_manifest(cls, table: pd.DataFrame) -> DenseAnnotations:
        """From an LLP manifest (clip_id + audio_events / visual_events lists)."""
        def events(column: str) -> dict[str, list[dict]]:
            return {c: list(e) for c, e in zip(table["clip_id"], table[column])
                    if e is not None and len(e)}

        audio, visual = events("audio_events"), events("visual_events")
        return cls(audio, visual, ("manifest audio_events", "manifest visual_events"))

    def _matrix(self, events: list[dict], source: str, filename: str) -> np.ndarray:
        gt = np.zeros((len(CATEGORIES), N_SEGMENTS))
        for event in events:
            line = event.get("line")
            where = f"{source} line {line} field event_labels" if line else f"{source} {filename}"
            gt += dense_matrix([event], where=where)
        return np.minimum(gt, 1)

    def ground_truth(self, filename: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(GT_a, GT_v, GT_av) [25, 10] for one clip; all zeros where the CSV has no row."""
        gt_a = self._matrix(self.audio.get(filename, []), self.sources[0], filename)
        gt_v = self._matrix(self.visual.get(filename, []), self.sources[1], filename)
        return gt_a, gt_v, gt_a * gt_v


class AvvpFeatures:
    """Torch-style dataset over LLP clips, one dict per clip with `audio` [10,128],
    `video_s` [80,2048], `video_st` [10,512] (the original's key names), `label` [25] and
    `index`; with `annotations`, also the dense `gt_a`, `gt_v` [25,10] used by evaluation.

    `lookup(key)` returns the three arrays of a clip; `key_of` maps a filename to that key
    (default the 11-char YouTube id, as the original `.npy` names; use `str` for stores keyed
    by the full clip name). Kept free of torch: the default collate turns it into tensors.
    """

    def __init__(self, weak: pd.DataFrame,
                 lookup: Callable[[str], Sequence[np.ndarray]],
                 key_of: Callable[[str], str] = video_id,
                 annotations: DenseAnnotations | None = None) -> None:
        self.weak = weak.reset_index(drop=True)
        self.lookup = lookup
        self.key_of = key_of
        self.annotations = annotations

    def __len__(self) -> int:
        return len(self.weak)

    def __getitem__(self, index: int) -> dict:
        row = self.weak.iloc[index]
        audio, visual_2d, visual_3d = self.lookup(self.key_of(row["filename"]))
        item = {"audio": np.asarray(audio, dtype=np.float32),
                "video_s": np.asarray(visual_2d, dtype=np.float32),
                "video_st": np.asarray(visual_3d, dtype=np.float32),
                "label": np.asarray(row["target"], dtype=np.float32),
                "index": index}
        if self.annotations is not None:
            gt_a, gt_v, _ = self.annotations.ground_truth(row["filename"])
            item["gt_a"] = gt_a.astype(np.int64)
            item["gt_v"] = gt_v.astype(np.int64)
        return item


class NpyFeatures:
    """Reader for the original feature layout: `<dir>/<11-char id>.npy` for VGGish [10,128],
    ResNet-152 [80,2048] and R(2+1)D-18 [10,512] (`data/feats/{vggish,res152,r2plus1d_18}`).
    A plain picklable object, so DataLoader workers under any start method can use it."""

    SHAPES = ((10, 128), (80, 2048), (10, 512))

    def __init__(self, audio_dir: str | Path, video_dir: str | Path, st_dir: str | Path) -> None:
        self.dirs = (Path(audio_dir), Path(video_dir), Path(st_dir))

    def has(self, key: str) -> bool:
        return all((d / f"{key}.npy").is_file() for d in self.dirs)

    def __call__(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arrays = []
        for folder, shape in zip(self.dirs, self.SHAPES):
            path = folder / f"{key}.npy"
            if not path.is_file():
                raise FileNotFoundError(f"missing feature file {path}")
            array = np.load(path, allow_pickle=False)
            if array.shape != shape:
                raise ValueError(f"{path}: shape {array.shape}, expected {shape}")
            arrays.append(array)
        return arrays[0], arrays[1], arrays[2]


def npy_lookup(audio_dir: str | Path, video_dir: str | Path, st_dir: str | Path) -> NpyFeatures:
    return NpyFeatures(audio_dir, video_dir, st_dir)


class MappingFeatures:
    """Lookup over three clip_id → array mappings (e.g. feature-store readers)."""

    def __init__(self, audio: Mapping, visual_2d: Mapping, visual_3d: Mapping) -> None:
        self.maps = (audio, visual_2d, visual_3d)

    def has(self, key: str) -> bool:
        return all(key in m for m in self.maps)

    def __call__(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.maps[0][key], self.maps[1][key], self.maps[2][key]


def _keep_available(weak: pd.DataFrame, has: Callable[[str], bool], split: str) -> pd.DataFrame:
    """Drop clips without features (failed downloads are normal at scale), saying how many."""
    mask = np.array([has(name) for name in weak["filename"]], dtype=bool)
    if not mask.all():
        missing = list(weak["filename"][~mask])
        log.warning("%s: %d of %d clips have no features and are left out (first: %s)",
                    split, len(missing), len(weak), ", ".join(missing[:3]))
    return weak[mask].reset_index(drop=True)


def original_splits(data_root: str | Path, feats_root: str | Path | None = None
                    ) -> dict[str, AvvpFeatures]:
    """train/val/test datasets from the original layout (also what `avel export --format llp`
    writes): `<data_root>/AVVP_*.csv` and `<feats_root>/{vggish,res152,r2plus1d_18}/<id>.npy`
    (feats_root defaults to `<data_root>/feats`). Val/test carry the dense ground truth."""
    root = Path(data_root)
    feats = Path(feats_root) if feats_root is not None else root / "feats"
    dense = DenseAnnotations.from_csv(root / EVAL_CSV[0], root / EVAL_CSV[1])
    lookup = NpyFeatures(*(feats / d for d in FEATURE_DIRS))
    splits = {}
    for split, csv in SPLIT_CSV.items():
        weak = _keep_available(read_weak_labels(root / csv),
                               lambda name: lookup.has(video_id(name)), split)
        splits[split] = AvvpFeatures(weak, lookup, annotations=dense)
    return splits


def manifest_splits(table: pd.DataFrame, audio: Mapping[str, np.ndarray],
                    visual_2d: Mapping[str, np.ndarray], visual_3d: Mapping[str, np.ndarray]
                    ) -> dict[str, AvvpFeatures]:
    """train/val/test datasets from an LLP manifest (clip_id, labels, split, audio_events,
    visual_events) and three feature mappings keyed by clip_id (e.g. the feature store's
    readers for vggish, resnet152 and r2plus1d_18)."""
    dense = DenseAnnotations.from_manifest(table)
    lookup = MappingFeatures(audio, visual_2d, visual_3d)
    splits = {}
    for split in SPLIT_CSV:
        rows = table[table["split"] == split]
        weak = pd.DataFrame({
            "filename": list(rows["clip_id"]),
            "video_id": [video_id(c) for c in rows["clip_id"]],
            "labels": [list(x) for x in rows["labels"]],
            "target": [label_vector(list(x), where=f"manifest clip {c} field labels")
                       for c, x in zip(rows["clip_id"], rows["labels"])],
        }, columns=["filename", "video_id", "labels", "target"])
        splits[split] = AvvpFeatures(_keep_available(weak, lookup.has, split), lookup, key_of=str,
                                     annotations=dense)
    return splits
