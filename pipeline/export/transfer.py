"""Moving features between the feature store and the authors' on-disk formats.

What every export and import shares: reading a store clip by clip in manifest order, or
shard by shard for per-clip files (a clip without features becomes a row of zeros or an
absent file, and a line in `missing.txt`), writing
imported arrays back into the store shard by shard (parts, consolidate, index) with
attrs that say where they came from, validating a released array's shape and dtype with
an error that names the file, and the provenance `README.txt` beside an export.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import __version__
from pipeline.core import atomic
from pipeline.core.config import load_config
from pipeline.core.errors import InputError
from pipeline.core.ledger import DONE, FAILED, Ledger
from pipeline.core.safe_hdf5 import open_checked
from pipeline.core.sharding import Shard, shard_of
from pipeline.core.workdir import Workdir, ledger_stage
from pipeline.store import features as store

log = logging.getLogger(__name__)

FLOAT_KINDS = "f"  # numpy dtype kinds accepted as features (float16/32/64)
IMPORT_BATCH = 256  # clips per store part on import


@dataclass
class ExportReport:
    """What an export wrote: files, rows per feature, clips without features."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)  # feature -> clip ids
    rows: int = 0
    absent: dict[str, str] = field(default_factory=dict)  # output not written -> why


@dataclass
class ImportReport:
    """What an import stored: clips per store name, files skipped with the reason."""

    stored: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- store → out

def open_store(workdir: str | Path, name: str) -> store.FeatureReader | None:
    """The store reader for `name`, or None when the extractor never ran."""
    try:
        return store.open_features(workdir, name)
    except FileNotFoundError:
        return None


def store_attrs(reader: store.FeatureReader | None) -> dict[str, Any]:
    if reader is None:
        return {}
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in reader.attrs.items()
            if k != "shards"}


def iter_rows(reader: store.FeatureReader | None, clip_ids: Sequence[str], shape: tuple[int, ...],
              missing: list[str]) -> Iterator[np.ndarray | None]:
    """Each clip's features in `clip_ids` order, None (and the id in `missing`) when the
    store has no row for it. A stored row of another shape is an error naming the clip."""
    for clip_id in clip_ids:
        if reader is None or clip_id not in reader:
            missing.append(clip_id)
            yield None
            continue
        row = np.asarray(reader[clip_id])
        if row.shape != shape:
            raise InputError(f"stored features of clip {clip_id!r} have shape {row.shape}, "
                             f"expected {shape}", file=reader.dir)
        yield row


def iter_rows_by_shard(reader: store.FeatureReader | None, clip_ids: Sequence[str],
                       shape: tuple[int, ...], missing: list[str]
                       ) -> Iterator[tuple[str, np.ndarray | None]]:
    """(clip_id, row) for every clip of `clip_ids`: first those without features (None, and
    listed in `missing`), then the stored ones shard by shard, each shard file read
    sequentially in blocks -- the order that reads a whole store at disk speed, for
    exports whose outputs do not depend on the order (one file per clip)."""
    absent = [c for c in clip_ids if reader is None or c not in reader]
    missing.extend(absent)
    for clip_id in absent:
        yield clip_id, None
    if reader is None:
        return
    for clip_id, row in reader.iter_rows(clip_ids):
        if row.shape != shape:
            raise InputError(f"stored features of clip {clip_id!r} have shape {row.shape}, "
                             f"expected {shape}", file=reader.dir)
        yield clip_id, row


def failure_reasons(workdir: str | Path, store_names: Iterable[str]) -> dict[str, dict[str, str]]:
    """Per store name, clip → why the extract stage has no features for it, from its
    ledgers (`state/extract-<name>/*.sqlite`): the failure reason, or 'pending'."""
    out: dict[str, dict[str, str]] = {}
    for name in store_names:
        reasons: dict[str, str] = {}
        ledgers = Workdir(workdir).root / "state" / ledger_stage("extract", name)
        for path in sorted(ledgers.glob("*.sqlite")):
            with Ledger(path) as ledger:
                for entry in ledger.entries():
                    if entry.status == FAILED:
                        reasons[entry.clip_id] = f"failed: {entry.reason}"
                    elif entry.status != DONE:
                        reasons[entry.clip_id] = entry.status
        out[name] = reasons
    return out


def write_missing(out_dir: Path, report: ExportReport,
                  reasons: dict[str, dict[str, str]] | None = None) -> Path:
    """`missing.txt`, always (empty of entries when nothing is missing, so a stale one never
    survives): one `file<TAB>clip_id<TAB>why` line per clip exported as a zero row (h5) or
    not written (per-clip files), and `file<TAB>*<TAB>why` per output not written at all.
    `reasons` maps output name → clip → reason."""
    reasons = reasons or {}
    lines = [f"{name}\t{clip}\t{reasons.get(name, {}).get(clip, 'not in the store')}"
             for name, clips in report.missing.items() for clip in clips]
    lines += [f"{name}\t*\tnot written: {why}" for name, why in report.absent.items()]
    path = out_dir / "missing.txt"
    atomic.write_text(path, "# file\tclip_id\twhy (no features in the store: row left zero or "
                      "file not written; * = the whole file)\n" + "".join(f"{x}\n" for x in lines))
    report.files.append(path)
    return path


def write_readme(out_dir: Path, fmt: str, workdir: Path, report: ExportReport,
                 features: dict[str, tuple[str, dict[str, Any]]], notes: Iterable[str] = ()) -> Path:
    """`README.txt`: where each exported array came from (store attrs), and what is absent."""
    lines = [f"Exported by avel {__version__} on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}",
             f"format: {fmt}", f"work directory: {workdir}", f"clips: {report.rows}", ""]
    for out_name, (store_name, attrs) in features.items():
        if out_name in report.absent:
            continue
        lines.append(f"{out_name}: from the feature store '{store_name}'")
        if not attrs:
            lines.append("  (no features in the store: every row is absent)")
        for key in sorted(attrs):
            lines.append(f"  {key}: {attrs[key]}")
        if str(attrs.get("weights", "")) == "random":
            lines.append("  WARNING: made with RANDOM weights; not the published features")
        n_missing = len(report.missing.get(out_name, []))
        lines.append(f"  clips without features: {n_missing}" + (" (see missing.txt)" if n_missing else ""))
        lines.append("")
    lines.append("labels: built from the manifest (pipeline/datasets/labels.py)")
    lines.extend(notes)
    if report.absent:
        lines.append("")
        lines.append("NOT written (exported with --allow-missing; see missing.txt):")
        lines.extend(f"  {name}: {why}" for name, why in report.absent.items())
    path = out_dir / "README.txt"
    atomic.write_text(path, "\n".join(lines) + "\n")
    report.files.append(path)
    return path


def write_clip_file(path: Path, data: bytes) -> None:
    """Per-clip output file: temp + rename, so a reader never sees half a file, but no
    fsync per file (it cost ~15 ms each, 9x the write itself); `flush_to_disk` once at the
    end of an export makes them durable. An export is rebuilt from the store on rerun."""
    temp = atomic.temp_path_for(path)
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def flush_to_disk() -> None:
    os.sync()


# --------------------------------------------------------------------------- out → store

def check_array(array: Any, expected: tuple[int | None, ...], path: Path, what: str) -> np.ndarray:
    """`array` as ndarray if it is a float/int array of the expected shape (None = any);
    else an InputError naming the file."""
    if not isinstance(array, np.ndarray):
        raise InputError(f"{what}: expected a numpy array, found {type(array).__name__}", file=path)
    if array.dtype.kind not in FLOAT_KINDS + "iub":
        raise InputError(f"{what}: dtype {array.dtype} is not numeric", file=path)
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape))
    if not ok:
        want = "[" + ",".join("N" if e is None else str(e) for e in expected) + "]"
        raise InputError(f"{what}: shape {list(array.shape)} is not {want}", file=path)
    return array


def num_shards(workdir: str | Path) -> int:
    config_file = Workdir(workdir).config
    return load_config(workdir).sharding.num_shards if config_file.is_file() else 1


class StoreWriter:
    """Writes imported rows into `features/<name>/`: parts per shard as they come, then one
    consolidate per shard in manifest order and a fresh index.h5."""

    def __init__(self, workdir: str | Path, name: str, attrs: dict[str, Any], order: Sequence[str],
                 dtype: np.dtype | str = "float32") -> None:
        self.wd = Workdir(workdir)
        self.name = name
        self.attrs = {"extractor": name, "avel_version": __version__, **attrs}
        self.order = list(order)
        self.dtype = np.dtype(dtype)
        self.count = num_shards(workdir)
        self.pending: dict[int, tuple[list[str], list[np.ndarray]]] = {}
        self.parts: list[Path] = []
        self.written = 0
        self.imported: set[str] = set()

    def add(self, clip_id: str, row: np.ndarray) -> None:
        s = shard_of(clip_id, self.count)
        with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
            row = np.asarray(row, dtype=self.dtype)
        if not np.isfinite(row).all():  # after the cast: float16 turns 1e5 into inf
            self.abort()  # this source's rows written so far go too
            raise InputError(f"clip {clip_id}: the features hold NaN or inf values "
                             f"(as {self.dtype}); none of this file's features were stored",
                             file=self.attrs.get("imported_from"))
        ids, rows = self.pending.setdefault(s, ([], []))
        ids.append(clip_id)
        rows.append(row)
        self.imported.add(clip_id)
        if len(ids) >= IMPORT_BATCH:
            self._flush(s)

    def _flush(self, s: int) -> None:
        ids, rows = self.pending.pop(s, ([], []))
        if ids:
            self.parts.append(store.write_part(
                self.wd.features_file(self.name, Shard(s, self.count)), ids, np.stack(rows), self.attrs))
            self.written += len(ids)

    def abort(self) -> None:
        """Remove the parts this writer wrote (an import that stops leaves the store as it was)."""
        self.pending.clear()
        for path in self.parts:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only when empty
        self.parts.clear()
        self.written = 0

    def _check_provenance(self) -> None:
        """A shard file has one provenance (its attrs): importing some clips into a shard whose
        other rows were made otherwise (e.g. random weights) would relabel those rows. Refused,
        and this import's parts removed, so every row stays truly described."""
        for s in range(self.count):
            shard_file = self.wd.features_file(self.name, Shard(s, self.count))
            if not shard_file.is_file():
                continue
            with open_checked(shard_file, what="features file") as fh:
                old = str(fh.attrs.get("weights", ""))
                ids = {c.decode() if isinstance(c, bytes) else str(c) for c in fh["clip_id"][()]}
            kept = ids - self.imported
            if old and old != self.attrs.get("weights") and kept:
                self.abort()
                raise InputError(
                    f"{len(kept)} clips here (e.g. {sorted(kept)[0]}) were made with "
                    f"weights={old!r}, which this import would relabel as "
                    f"{self.attrs.get('weights')!r}; import into an empty store (move "
                    f"{shard_file.parent} aside) or import every clip of the shard",
                    file=shard_file)

    def finish(self) -> int:
        for s in list(self.pending):
            self._flush(s)
        if not self.written:
            return 0
        self._check_provenance()
        for s in range(self.count):
            shard_file = self.wd.features_file(self.name, Shard(s, self.count))
            if shard_file.is_file() or store.parts_dir(shard_file).is_dir():
                store.consolidate(shard_file, order=self.order, attrs=self.attrs)
        store.build_index(self.wd.features_dir(self.name), order=self.order)
        log.info("stored %d imported clips in %s", self.written, self.wd.features_dir(self.name))
        return self.written


def import_attrs(fmt: str, source: Path, **extra: Any) -> dict[str, Any]:
    """Attrs of imported features: `weights` says they are not ours (see DESIGN: weights
    identity), `source_format`/`imported_from` where exactly they came from."""
    return {"weights": f"imported: {source.resolve()}", "source_format": fmt,
            "imported_from": str(source.resolve()),
            "imported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **{k: (v if isinstance(v, (str, int, float, bool)) else json.dumps(v))
               for k, v in extra.items()}}


def read_missing(directory: Path) -> dict[str, set[str]]:
    """The `missing.txt` of an avel export, so an import does not store its zero rows."""
    path = directory / "missing.txt"
    out: dict[str, set[str]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line and not line.startswith("#") and "\t" in line:
                name, clip = line.split("\t")[:2]
                out.setdefault(name, set()).add(clip)
    return out


def manifest_order(manifest: pd.DataFrame) -> list[str]:
    return [str(c) for c in manifest["clip_id"]]
