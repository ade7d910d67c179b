"""The VGGSound-AVEL100k/50k format of the CPSP code: per video `<video_id>.zip` holding one
`.pkl` (a pickled numpy array) in each of three directories, read by `_load_fea`:

- `audio_feature/` [10,128] (store `vggish`; the loader pads short arrays by repeating the
  last row and truncates long ones),
- `video_feature/` [10,1024,7,7] (store `resnet_layer3`, channel-first as the loader's
  ResNet path reads it; a store holding [10,7,7,1024] is transposed), or [10,7,7,512]
  from `vgg19` for the loader's 'vgg' path,
- `avc_label/` [1,10] 0/1 per-second audio-visual correspondence (store `avc_label`, else
  the manifest's `avc` column),

plus the meta CSV (`category,video_id,split`) and `VggsoundAVEL100kCategories.txt`.

Unpickling runs code chosen by whoever made the file, so import refuses to open these
archives unless the caller passes `trust_pickles=True`. Export writes plain ndarrays only.
"""

from __future__ import annotations

import io
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.core import atomic
from pipeline.core.config import load_config, resolve
from pipeline.core.errors import InputError
from pipeline.core.workdir import Workdir
from pipeline.datasets import labels
from pipeline.datasets.manifest import load_manifest
from pipeline.datasets.readers.vggsound_avel import categories_for
from pipeline.export import transfer

log = logging.getLogger(__name__)

AUDIO_DIR, VISUAL_DIR, LABEL_DIR = "audio_feature", "video_feature", "avc_label"
CATEGORIES_FILE = "VggsoundAVEL100kCategories.txt"
AUDIO_SHAPE = (10, 128)
VISUAL_SHAPES = {"resnet_layer3": (10, 1024, 7, 7), "vgg19": (10, 7, 7, 512)}
# store layouts accepted on export besides the loader's own: channel-last layer-3 maps
CHANNEL_LAST = {"resnet_layer3": (10, 7, 7, 1024)}
AVC_STORE = "avc_label"
PICKLE_PROTOCOL = 2  # readable by the Python of the original code as well

TRUST_MESSAGE = ("VGGSound-AVEL features are pickles inside zip files, and unpickling a file "
                 "can run any code its author put there. Import them only from a source you "
                 "trust, by passing --trust-pickles (trust_pickles=True).")


def meta_name(dataset: str) -> str:
    return "vggsound-avel50k.csv" if dataset.endswith("50k") else "vggsound-avel100k.csv"


def _zip_pickle(path: Path, member: str, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(member, pickle.dumps(array, protocol=PICKLE_PROTOCOL))
    transfer.write_clip_file(path, buffer.getvalue())


def categories(workdir: Path, manifest: pd.DataFrame) -> list[str]:
    """The category list: the dataset's own file when the config names one, else rebuilt
    from the manifest's (category, class_id) pairs, which must then cover every id."""
    files = {}
    if Workdir(workdir).config.is_file():
        files = {k: resolve(workdir, v) for k, v in load_config(workdir).dataset.files.items()}
    return categories_for(workdir, manifest, files)


def avc_labels(workdir: Path, manifest: pd.DataFrame) -> tuple[dict[str, np.ndarray], str]:
    """Per clip the [10] avc label and where it came from ({} when there is none)."""
    reader = transfer.open_store(workdir, AVC_STORE)
    if reader is not None:
        with reader:
            return {c: np.asarray(reader[c]).reshape(10) for c in reader.clip_ids}, \
                f"feature store '{AVC_STORE}' ({transfer.store_attrs(reader).get('weights', '')})"
    if "avc" in manifest:
        avc = labels.avc_from_manifest(manifest)
        return dict(zip(transfer.manifest_order(manifest), avc)), "manifest column 'avc'"
    return {}, "none"


def export(workdir: str | Path, out_dir: str | Path, *, visual: str = "resnet_layer3",
           dtype: str = "float32") -> transfer.ExportReport:
    """Write the three zip directories, the meta CSV and the categories file."""
    if visual not in VISUAL_SHAPES:
        raise InputError(f"visual features must be one of {', '.join(VISUAL_SHAPES)}", field="visual")
    workdir, out = Path(workdir), Path(out_dir)
    manifest = load_manifest(workdir)
    # everything the meta CSV and the categories file need, checked before any zip is written
    for column in ("category", "split"):
        if column not in manifest:
            raise InputError(f"the manifest has no '{column}' column, which the VGGSound-AVEL "
                             "meta CSV needs (this format is for a VGGSound-AVEL manifest); "
                             "nothing was written", file=Workdir(workdir).manifest, field=column)
    cats = categories(workdir, manifest)
    clip_ids = transfer.manifest_order(manifest)
    report = transfer.ExportReport(out_dir=out, rows=len(clip_ids))
    provenance = {}
    visual_shapes = [VISUAL_SHAPES[visual]] + ([CHANNEL_LAST[visual]] if visual in CHANNEL_LAST else [])
    for directory, name, shapes in ((AUDIO_DIR, "vggish", [AUDIO_SHAPE]),
                                    (VISUAL_DIR, visual, visual_shapes)):
        reader = transfer.open_store(workdir, name)
        stored_shape = shapes[0]
        if reader is not None and len(reader):
            stored_shape = reader.shape
            if stored_shape not in shapes:
                raise InputError(f"store '{name}' holds {list(stored_shape)}, expected "
                                 f"{list(shapes[0])}", file=reader.dir)
        missing: list[str] = []
        (out / directory).mkdir(parents=True, exist_ok=True)
        rows = transfer.iter_rows_by_shard(reader, clip_ids, stored_shape, missing)
        for clip, row in tqdm(rows, total=len(clip_ids), desc=directory, unit="clip", leave=False):
            path = out / directory / f"{clip}.zip"
            if row is None:  # a file left by an earlier export would contradict missing.txt
                path.unlink(missing_ok=True)
                continue
            if stored_shape != shapes[0]:  # channel-last maps → the loader's channel-first
                row = np.moveaxis(row, -1, 1)
            _zip_pickle(path, f"{clip}.pkl", np.ascontiguousarray(row, dtype=dtype))
            report.files.append(path)
        report.missing[directory] = missing
        provenance[directory] = (name, transfer.store_attrs(reader))
        if reader is not None:
            reader.close()
    avc, avc_source = avc_labels(workdir, manifest)
    notes = [f"avc labels: from {avc_source}"]
    if avc:
        (out / LABEL_DIR).mkdir(parents=True, exist_ok=True)
        report.missing[LABEL_DIR] = [c for c in clip_ids if c not in avc]
        for clip in clip_ids:
            path = out / LABEL_DIR / f"{clip}.zip"
            if clip not in avc:
                path.unlink(missing_ok=True)
                continue
            _zip_pickle(path, f"{clip}.pkl", avc[clip].astype(np.float32).reshape(1, 10))
            report.files.append(path)
    else:
        log.warning("no avc labels (neither imported nor in the manifest): %s/ not written", LABEL_DIR)
        notes.append(f"{LABEL_DIR}/ not written: no per-second labels were available")
    atomic.write_text(out / CATEGORIES_FILE, "\n".join(cats) + "\n")
    meta = pd.DataFrame({"category": manifest["category"], "video_id": clip_ids,
                         "split": manifest["split"]})
    meta_path = out / meta_name(_dataset_name(workdir))
    with atomic.atomic_path(meta_path) as temp:
        meta.to_csv(temp, index=False)
    report.files += [out / CATEGORIES_FILE, meta_path]
    transfer.flush_to_disk()
    why = transfer.failure_reasons(workdir, ["vggish", visual])
    transfer.write_missing(out, report, {AUDIO_DIR: why["vggish"], VISUAL_DIR: why[visual]})
    transfer.write_readme(out, "vggsound-avel", workdir, report, provenance, notes=notes + [
        f"zips: <dir>/<video_id>.zip holding <video_id>.pkl, a pickled {dtype} ndarray "
        f"(protocol {PICKLE_PROTOCOL}); avc labels [1,10] float32",
        f"categories: {len(cats)} in {CATEGORIES_FILE} (class id = line index)"])
    log.info("exported %d VGGSound-AVEL clips to %s", len(clip_ids), out)
    return report


def _dataset_name(workdir: Path) -> str:
    return load_config(workdir).dataset.name if Workdir(workdir).config.is_file() else "vggsound-avel"


# --------------------------------------------------------------------------- import

# A feature member is at most VGG-19 pool5 of ten seconds (10*7*7*512 float32 = 1 MB); the cap
# leaves room for other layouts and bounds what one member can take: an import holds at most
# one member (64 MB) plus its unpickled array, so a zip bomb stops well under 200 MB of RSS.
MAX_MEMBER_BYTES = 64 << 20


def bounded_member(zf: zipfile.ZipFile, name: str, path: Path) -> bytes:
    """The member's bytes, read in one bounded call: the declared size is checked first and
    the stream is cut at the cap in case the header lies."""
    info = zf.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise InputError(f"member {name} inflates to {info.file_size} bytes, over the "
                         f"{MAX_MEMBER_BYTES >> 20} MB cap for one feature file", file=path)
    with zf.open(info) as fh:
        data = fh.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise InputError(f"member {name} inflates past the {MAX_MEMBER_BYTES >> 20} MB cap "
                         "(its header understates its size)", file=path)
    return data


def read_zip(path: Path) -> object:
    """The unpickled content of the (last) `.pkl` member, as the CPSP `_load_fea` does.
    Call only for trusted files."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if ".pkl" in n]
            if not members:
                raise InputError("no .pkl member in the zip", file=path)
            return pickle.loads(bounded_member(zf, members[-1], path))  # noqa: S301 - gated by trust_pickles
    except zipfile.BadZipFile as exc:
        raise InputError(f"not a zip file: {exc}", file=path) from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError) as exc:
        raise InputError(f"cannot unpickle: {exc}", file=path) from None


def to_ten(audio: np.ndarray) -> np.ndarray:
    """The loader's length fix: repeat the last row up to 10, or keep the first 10."""
    if audio.shape[0] < 10:
        return np.concatenate([audio, np.tile(audio[-1], (10 - audio.shape[0], 1))])
    return audio[:10]


def _find(directory: Path, clip: str) -> Path | None:
    for name in (f"{clip}.zip", f"{clip}.mp4.zip"):
        if (directory / name).is_file():
            return directory / name
    return None


def import_(src_dir: str | Path, workdir: str | Path, *, trust_pickles: bool = False,
            visual: str = "resnet_layer3", store_dtype: str = "float32") -> transfer.ImportReport:
    """Read the three zip directories into the store (`vggish`, `resnet_layer3`/`vgg19`,
    `avc_label`). A bad file stops the import and what it had stored is removed."""
    if not trust_pickles:
        raise InputError(TRUST_MESSAGE, file=src_dir)
    src, workdir = Path(src_dir), Path(workdir)
    manifest = load_manifest(workdir)
    clip_ids = transfer.manifest_order(manifest)
    report = transfer.ImportReport()
    plan = [(AUDIO_DIR, "vggish", (None, 128)), (VISUAL_DIR, visual, VISUAL_SHAPES[visual]),
            (LABEL_DIR, AVC_STORE, None)]
    present = [p for p in plan if (src / p[0]).is_dir()]
    if not present:
        raise InputError(f"none of the directories {AUDIO_DIR}, {VISUAL_DIR}, {LABEL_DIR} found",
                         file=src)
    writers: list[transfer.StoreWriter] = []
    try:
        for directory, name, shape in present:
            writer = transfer.StoreWriter(workdir, name, transfer.import_attrs(
                "vggsound-avel", src / directory), clip_ids,
                store_dtype if name != AVC_STORE else "float32")
            writers.append(writer)
            padded = 0
            for clip in tqdm(clip_ids, desc=f"import {directory}", unit="clip", leave=False):
                path = _find(src / directory, clip)
                if path is None:
                    report.skipped.append(f"{directory}: {clip} (no zip)")
                    continue
                array = read_zip(path)
                if name == AVC_STORE:
                    array = transfer.check_array(array, (None,) * np.ndim(array), path, "avc label")
                    if array.size != 10 or array.ndim > 2 or not np.isin(array, (0, 1)).all():
                        raise InputError(f"avc label: expected [1,10] or [10] of 0/1, found "
                                         f"shape {list(array.shape)}", file=path)
                    array = array.reshape(10)
                else:
                    array = transfer.check_array(array, shape, path, f"{directory} features")
                    if array.dtype.kind != "f":
                        raise InputError(f"{directory} features: dtype {array.dtype} is not a "
                                         f"float type", file=path)
                    if name == "vggish" and array.shape[0] == 0:
                        raise InputError(f"{directory} features: no rows", file=path)
                    if name == "vggish" and array.shape[0] != 10:
                        padded += 1
                        array = to_ten(array)
                writer.add(clip, array)
            if padded:
                writer.attrs["length_fixed_clips"] = padded
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:  # only once every file has been read and checked
        report.stored[writer.name] = writer.finish()
    return report
