"""The LLP format of the AVVP/HAN and CPSP-AVVP code: one `.npy` per clip and feature,
`feats/<kind>/<id>.npy`, where `<id>` is the first 11 characters of the CSV filename (the
YouTube id) — the name `LLP_dataset.__getitem__` builds with `row[0][:11] + '.npy'`.

vggish → `feats/vggish` [10,128], resnet152 → `feats/res152` [80,2048],
r2plus1d_18 → `feats/r2plus1d_18` [10,512]; float32 as the extraction scripts save them.
A clip without features gets no file and a line in `missing.txt`. Import loads with
`allow_pickle=False`, so an `.npy` file can never run code.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.core import atomic
from pipeline.core.errors import InputError
from pipeline.core.workdir import check_clip_id
from pipeline.datasets.manifest import load_manifest
from pipeline.export import completeness, transfer

log = logging.getLogger(__name__)

# directory under feats/ -> (store name, per-clip shape)
FEATURES: dict[str, tuple[str, tuple[int, ...]]] = {
    "vggish": ("vggish", (10, 128)),
    "res152": ("resnet152", (80, 2048)),
    "r2plus1d_18": ("r2plus1d_18", (10, 512)),
}
ID_CHARS = 11
SPLIT_CSV = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
FULL_CSV = "AVVP_dataset_full.csv"
EVENT_CSV = {"audio": "AVVP_eval_audio.csv", "visual": "AVVP_eval_visual.csv"}


def write_csvs(manifest: pd.DataFrame, out: Path) -> list[Path]:
    """The label CSVs the AVVP code reads, from the manifest: tab-separated with a header.
    Weak files list clips in manifest order (for the real lists: byte-identical to the
    shipped ones); the dense eval files list each val/test clip's events grouped by clip."""
    written = []
    weak = pd.DataFrame({"filename": manifest["clip_id"],
                         "event_labels": [",".join(labels) for labels in manifest["labels"]]})
    for split, name in (*SPLIT_CSV.items(), ("all", FULL_CSV)):
        rows = weak if split == "all" else weak[(manifest["split"] == split).to_numpy()]
        with atomic.atomic_path(out / name) as temp:
            rows.to_csv(temp, sep="\t", index=False)
        written.append(out / name)
    for modality, name in EVENT_CSV.items():
        column = f"{modality}_events"
        if column not in manifest:
            continue
        rows = [(clip, e["onset"], e["offset"], e["label"])
                for clip, events in zip(manifest["clip_id"], manifest[column])
                for e in (events if events is not None else ())]
        table = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_labels"])
        with atomic.atomic_path(out / name) as temp:
            table.to_csv(temp, sep="\t", index=False)
        written.append(out / name)
    return written


def file_ids(manifest: pd.DataFrame) -> list[str]:
    """Per clip the feature file stem: the first 11 characters of the clip name (which is
    the YouTube id even when ids hold '_' or '-'). Two clips of one video would overwrite
    each other in the original layout, so that is an error."""
    ids = [str(c)[:ID_CHARS] for c in manifest["clip_id"]]
    first: dict[str, str] = {}
    for clip, stem in zip(manifest["clip_id"], ids):
        problem = check_clip_id(stem)
        if problem:
            raise InputError(f"clip {clip!r}: {problem}", field="clip_id")
        if stem in first:
            raise InputError(f"clips {first[stem]!r} and {clip!r} share the feature file "
                             f"{stem}.npy; the AVVP layout holds one clip per YouTube id",
                             field="clip_id")
        first[stem] = clip
    return ids


def _save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    transfer.write_clip_file(path, buffer.getvalue())


def absent_outputs(workdir: Path, manifest: pd.DataFrame) -> dict[str, str]:
    """Feature directories whose store was never extracted, eval CSVs the manifest has no
    events for: what the AVVP code opens that this export cannot write."""
    absent = {f"feats/{kind}": f"no '{name}' features in the store (avel extract --extractor {name})"
              for kind, (name, _) in FEATURES.items() if transfer.open_store(workdir, name) is None}
    for modality, name in EVENT_CSV.items():
        if f"{modality}_events" not in manifest:
            absent[name] = f"the manifest has no {modality}_events (the dataset's dense labels)"
    return absent


def export(workdir: str | Path, out_dir: str | Path, *, dtype: str = "float32",
           allow_missing: bool = False) -> transfer.ExportReport:
    """Write `feats/<kind>/<id>.npy` for every manifest clip with features in the store, and
    the label CSVs. A feature kind or CSV that cannot be made stops the export before any
    write, unless `allow_missing`."""
    workdir, out = Path(workdir), Path(out_dir)
    manifest = load_manifest(workdir)
    clip_ids = transfer.manifest_order(manifest)
    stems = file_ids(manifest)
    stem_of = dict(zip(clip_ids, stems))
    absent = absent_outputs(workdir, manifest)
    completeness.refuse_if_absent(absent, out, allow_missing)
    out.mkdir(parents=True, exist_ok=True)
    report = transfer.ExportReport(out_dir=out, rows=len(clip_ids), absent=absent)
    provenance = {}
    for kind, (name, shape) in FEATURES.items():
        if f"feats/{kind}" in absent:
            continue
        reader = transfer.open_store(workdir, name)
        missing: list[str] = []
        target = out / "feats" / kind
        target.mkdir(parents=True, exist_ok=True)
        rows = transfer.iter_rows_by_shard(reader, clip_ids, shape, missing)
        for clip, row in tqdm(rows, total=len(stems), desc=kind, unit="clip", leave=False):
            path = target / f"{stem_of[clip]}.npy"
            if row is None:  # a file left by an earlier export would contradict missing.txt
                path.unlink(missing_ok=True)
                continue
            _save_npy(path, row.astype(dtype))
            report.files.append(path)
        report.missing[kind] = missing
        provenance[f"feats/{kind}"] = (name, transfer.store_attrs(reader))
        if reader is not None:
            reader.close()
    report.missing = {f"feats/{k}": v for k, v in report.missing.items()}
    report.files += write_csvs(manifest, out)
    transfer.flush_to_disk()
    why = transfer.failure_reasons(workdir, [name for name, _ in FEATURES.values()])
    transfer.write_missing(out, report, {f"feats/{k}": why[name] for k, (name, _) in FEATURES.items()})
    csvs = [name for name in (*SPLIT_CSV.values(), FULL_CSV, *EVENT_CSV.values()) if name not in absent]
    transfer.write_readme(out, "llp", workdir, report, provenance, notes=[
        f"files: feats/<kind>/<first 11 characters of the filename>.npy, {dtype}",
        f"label CSVs ({', '.join(csvs)}) written from the manifest"])
    log.info("exported %d LLP clips to %s", len(clip_ids), out)
    return report


def load_npy(path: Path, shape: tuple[int, ...], header_only: bool = False) -> np.ndarray:
    """One released `.npy`, checked; never unpickles. `header_only` maps the file instead of
    reading it, which is enough to check shape and dtype."""
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if header_only else None)
    except ValueError as exc:  # object arrays need pickle
        raise InputError(f"refused: {exc}", file=path) from None
    except OSError as exc:
        raise InputError(f"not a readable .npy file: {exc}", file=path) from None
    array = transfer.check_array(array, shape, path, "features")
    if array.dtype.kind != "f":
        raise InputError(f"features: dtype {array.dtype} is not a float type", file=path)
    return np.asarray(array)


def import_(src_dir: str | Path, workdir: str | Path, *,
            store_dtype: str = "float32") -> transfer.ImportReport:
    """Read `feats/<kind>/<id>.npy` (or `<kind>/<id>.npy`) into the store for every manifest
    clip that has a file. Every file is validated before anything is stored."""
    src, workdir = Path(src_dir), Path(workdir)
    base = src / "feats" if (src / "feats").is_dir() else src
    manifest = load_manifest(workdir)
    clip_ids = transfer.manifest_order(manifest)
    stems = file_ids(manifest)
    report = transfer.ImportReport()
    kinds = [k for k in FEATURES if (base / k).is_dir()]
    if not kinds:
        raise InputError(f"none of the directories {', '.join(FEATURES)} found", file=base)
    found: dict[str, list[tuple[str, Path]]] = {}
    for kind in kinds:  # pass 1: headers only, so a bad file stops the import before any write
        _, shape = FEATURES[kind]
        found[kind] = []
        for clip, stem in zip(clip_ids, stems):
            path = base / kind / f"{stem}.npy"
            if path.is_file():
                load_npy(path, shape, header_only=True)
                found[kind].append((clip, path))
            else:
                report.skipped.append(f"{kind}: {clip} (no {path.name})")
    for kind, files in found.items():  # pass 2: read and store
        name, shape = FEATURES[kind]
        writer = transfer.StoreWriter(workdir, name, transfer.import_attrs("llp", base / kind),
                                      clip_ids, store_dtype)
        for clip, path in tqdm(files, desc=f"import {kind}", unit="clip", leave=False):
            writer.add(clip, load_npy(path, shape))
        report.stored[name] = writer.finish()
    return report
