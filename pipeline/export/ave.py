"""The AVE format of the AVE/PSP/CPSP code: h5 files with key `avadataset`, rows in
Annotations order, plus `{train,val,test}_order.h5` (key `order`, int64 row indices).

Export writes `audio_feature.h5` [N,10,128] (store `vggish`), `visual_feature.h5`
[N,10,7,7,512] (store `vgg19`), `right_labels.h5` (= `labels.h5`) [N,10,29], `mil_labels.h5`
[N,29], `prob_label.h5` [N,29], `labels_closs.h5` [N,10], the order files, and the weakly /
CMM / CPSP-ResNet files of `ave_settings` and `cpsp_resnet`. A clip without
features keeps a zero row and is listed in `missing.txt`. Features are float64 by default,
as in the shipped `audio_feature_noisy.h5`; both original loaders cast on reading.
Import reads the two feature files back into the store.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.core import atomic
from pipeline.core.errors import InputError
from pipeline.core.safe_hdf5 import check_rows_stored, open_checked
from pipeline.datasets import labels
from pipeline.datasets.manifest import load_manifest
from pipeline.export import ave_settings, completeness, transfer
from pipeline.export import cpsp_resnet as cpsp_resnet_layout

log = logging.getLogger(__name__)

KEY = "avadataset"
SPLITS = ("train", "val", "test")
# file name -> (store name, per-clip shape)
FEATURES: dict[str, tuple[str, tuple[int, ...]]] = {
    "audio_feature.h5": ("vggish", (10, 128)),
    "visual_feature.h5": ("vgg19", (10, 7, 7, 512)),
}


def annotation_rows(manifest: pd.DataFrame) -> np.ndarray:
    """Each manifest clip's row in the released arrays (its Annotations row)."""
    if "row" in manifest:
        return manifest["row"].to_numpy(dtype=np.int64)
    return np.arange(len(manifest), dtype=np.int64)


def split_orders(manifest: pd.DataFrame, orders_dir: Path | None) -> dict[str, np.ndarray]:
    """The order arrays. When the dataset's own order files are at hand and hold exactly the
    manifest's rows of a split, their sequence is kept (the shipped files are not sorted,
    and training shuffles from that sequence); otherwise the rows ascending."""
    built = labels.ave_split_orders(manifest)
    if orders_dir is None:
        return built
    for split in SPLITS:
        path = Path(orders_dir) / f"{split}_order.h5"
        if not path.is_file():
            continue
        with open_checked(path, what="order file") as fh:
            original = np.asarray(fh["order"][()], dtype=np.int64).ravel()
        if np.array_equal(np.sort(original), built[split]):
            built[split] = original
    return built


def _write_h5(path: Path, key: str, data: np.ndarray) -> Path:
    with atomic.atomic_path(path) as temp:
        with h5py.File(temp, "w") as fh:
            fh.create_dataset(key, data=data)
    return path


def export(workdir: str | Path, out_dir: str | Path, *, dtype: str = "float64",
           orders_dir: str | Path | None = None, background_workdir: str | Path | None = None,
           cpsp_resnet: bool = False, allow_missing: bool = False) -> transfer.ExportReport:
    """Write the AVE files into `out_dir` from the store and the manifest: every file the
    AVE-ECCV18, PSP and CPSP scripts open (fully, weakly, CMM; see ave_settings), plus
    CPSP's ResNet-path layout with `cpsp_resnet`. A file that cannot be made stops the
    export before anything is written, unless `allow_missing`."""
    workdir, out = Path(workdir), Path(out_dir)
    manifest = load_manifest(workdir)
    rows = annotation_rows(manifest)
    n = int(rows.max()) + 1 if len(rows) else 0
    if len(set(rows.tolist())) != len(rows):
        raise InputError("manifest rows repeat an Annotations row", field="row")
    bg = Path(background_workdir) if background_workdir else None
    absent = {f: f"no '{name}' features in the store (avel extract --extractor {name})"
              for f, (name, _) in FEATURES.items() if transfer.open_store(workdir, name) is None}
    if "visual_feature.h5" in absent:
        absent[ave_settings.VISUAL_VEC] = absent["visual_feature.h5"]
    absent.update(ave_settings.background_absent(bg))
    if cpsp_resnet:
        absent.update(cpsp_resnet_layout.absent(workdir, manifest, rows))
    completeness.refuse_if_absent(absent, out, allow_missing)
    out.mkdir(parents=True, exist_ok=True)
    for name in absent:  # a file left by an earlier export would contradict missing.txt
        if (out / name).is_file():
            (out / name).unlink()
    report = transfer.ExportReport(out_dir=out, rows=n, absent=absent)
    clip_ids = transfer.manifest_order(manifest)
    provenance: dict = {}
    vec = ave_settings.VISUAL_VEC
    for filename, (name, shape) in (*FEATURES.items(), (vec, ("vgg19", (10, 7, 7, 512)))):
        if filename in absent:
            continue
        reader = transfer.open_store(workdir, name)
        missing: list[str] = []
        try:
            report.files.append(ave_settings.write_rows(
                out / filename, reader, clip_ids, rows, n, shape,
                (10, 512) if filename == vec else shape, dtype, missing,
                ave_settings.pooled if filename == vec else None))
        finally:
            if reader is not None:
                reader.close()
        report.missing[filename] = missing
        provenance[filename] = (name, transfer.store_attrs(reader))

    def full(per_clip: np.ndarray) -> np.ndarray:
        # rows of the released arrays that no manifest clip fills stay zero
        array = np.zeros((n, *per_clip.shape[1:]), dtype=per_clip.dtype)
        array[rows] = per_clip
        return array

    classes = labels.ave_classes(manifest)
    segment_labels = full(labels.ave_segment_labels(manifest, classes))
    for filename, array in (
            ("right_labels.h5", segment_labels),
            ("labels.h5", segment_labels),  # AVE-ECCV18's name for the same array
            ("mil_labels.h5", full(labels.ave_mil_labels(manifest, classes))),
            ("prob_label.h5", full(labels.ave_prob_labels(manifest, classes))),
            ("labels_closs.h5", full(labels.ave_event_indicator(manifest)))):
        report.files.append(_write_h5(out / filename, KEY, array))
    orders = split_orders(manifest, Path(orders_dir) if orders_dir else None)
    for split, order in orders.items():
        report.files.append(_write_h5(out / f"{split}_order.h5", "order", order.astype(np.int64)))
    match, match_note = ave_settings.match_orders(Path(orders_dir) if orders_dir else None, n, orders)
    for split, order in match.items():
        report.files.append(_write_h5(out / f"{split}_order_match.h5", "order", order))
    notes = [f"classes ({len(classes)} + background, column {len(classes)}): " + "; ".join(classes),
             f"feature dtype: {dtype}; key 'avadataset'; rows in Annotations order",
             "labels.h5 and right_labels.h5: the same per-second labels under the names "
             "AVE-ECCV18 and PSP/CPSP open",
             "order files: key 'order', int64 row indices", match_note]
    if vec not in absent:
        notes.append(f"{vec}: visual_feature.h5 globally average-pooled over 7x7 (CMM)")
    if bg is not None and ave_settings.NOISY_LABELS not in absent:
        ave_settings.export_background(bg, out, len(classes), dtype, report, provenance)
        notes.append(f"*_noisy.h5: the background-only videos of {bg} (weakly setting), "
                     f"{ave_settings.NOISY_LABELS} background column only")
    if cpsp_resnet and not any(k in absent for k in ("Annotations.txt", cpsp_resnet_layout.MAPS)):
        cpsp_resnet_layout.export(workdir, manifest, rows, out, report, provenance)
        notes.append("CPSP ResNet path: Annotations.txt, {train,val,test}Set.txt, "
                     f"{cpsp_resnet_layout.MAPS}/<split>/<VideoID>.pkl [10,1024,7,7] float32")
    why = transfer.failure_reasons(workdir, [name for name, _ in FEATURES.values()])
    reasons = {f: why[name] for f, (name, _) in FEATURES.items()}
    reasons[vec] = why["vgg19"]
    transfer.write_missing(out, report, reasons)
    transfer.write_readme(out, "ave", workdir, report, provenance, notes=notes)
    log.info("exported %d AVE rows to %s", n, out)
    return report


# --------------------------------------------------------------------------- import

def read_feature_file(path: Path, shape: tuple[int, ...], n_rows: int) -> h5py.Dataset:
    """Open and validate one released feature file; the caller closes `.file`."""
    fh = open_checked(path, what="released feature file")  # no external storage/links/VDS
    if KEY not in fh:
        fh.close()
        raise InputError(f"no dataset '{KEY}'", file=path, field=KEY)
    ds = fh[KEY]
    if ds.dtype.kind != "f":
        fh.close()
        raise InputError(f"dtype {ds.dtype} is not a float type", file=path, field=KEY)
    if ds.shape[1:] != shape or ds.shape[0] < n_rows:
        fh.close()
        raise InputError(f"shape {list(ds.shape)} is not [{n_rows}+,{','.join(map(str, shape))}]",
                         file=path, field=KEY)
    return ds


def import_(src_dir: str | Path, workdir: str | Path, *, store_dtype: str = "float32",
            chunk: int = 64) -> transfer.ImportReport:
    """Read `audio_feature.h5` / `visual_feature.h5` from `src_dir` into the store
    (`vggish`, `vgg19`), one manifest clip per Annotations row. Rows listed in an avel
    `missing.txt` are not stored."""
    src, workdir = Path(src_dir), Path(workdir)
    manifest = load_manifest(workdir)
    rows = annotation_rows(manifest)
    clip_ids = transfer.manifest_order(manifest)
    missing = transfer.read_missing(src)
    report = transfer.ImportReport()
    present = [f for f in FEATURES if (src / f).is_file()]
    if not present:
        raise InputError(f"none of {', '.join(FEATURES)} found", file=src)
    # validate every file before writing anything
    opened: dict[str, h5py.Dataset] = {}
    try:
        for f in present:
            opened[f] = read_feature_file(src / f, FEATURES[f][1], int(rows.max()) + 1)
            skip = missing.get(f, set())
            # rows declared but never written read as zeros: each row imported must be stored
            # (an avel export leaves the rows of missing.txt unwritten, and they are skipped)
            check_rows_stored(opened[f], (r for c, r in zip(clip_ids, rows) if c not in skip),
                              src / f, KEY)
        for filename, ds in opened.items():
            name, _ = FEATURES[filename]
            writer = transfer.StoreWriter(workdir, name, transfer.import_attrs(
                "ave", src / filename, source_dtype=str(ds.dtype)), clip_ids, store_dtype)
            skip = missing.get(filename, set())
            for start in tqdm(range(0, len(rows), chunk), desc=f"import {filename}", leave=False):
                sel = rows[start:start + chunk]
                lo, hi = int(sel.min()), int(sel.max()) + 1
                block = ds[lo:hi]
                for clip_id, r in zip(clip_ids[start:start + chunk], sel):
                    if clip_id in skip:
                        continue
                    writer.add(clip_id, block[r - lo])
            report.stored[name] = writer.finish()
            report.skipped.extend(f"{filename}: {c} (listed in missing.txt)" for c in sorted(skip))
    finally:
        for ds in opened.values():
            ds.file.close()
    return report
