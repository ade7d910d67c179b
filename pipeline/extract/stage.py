"""The extract stage: one runner that drives every extractor over one shard's cut clips.

Flow: cut clips (`clips/<shard>.h5`) → worker processes read each clip once for every
extractor of the pass and either decode and preprocess it (decode=cpu) or ship its JPEG
bytes (decode=device; the main process decodes them batched on the device and resizes
there) → the main process packs the items of many clips into full batches per extractor
(channels_last, inference_mode, autocast for bf16/fp16) → each finished clip is folded
(`fold`) and kept on the device → every `flush_clips` clips one copy to the host, a store
part is written, THEN those clips are marked done in the ledger `extract-<extractor>`.
At the end the parts are consolidated into `features/<name>/<shard>.h5` (manifest order)
and, when it was the last shard through, `index.h5` is built. A kill loses at most the clips
since the last part; a rerun reconciles clips found in parts but not yet marked done, and
never stores a clip twice.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import pickle
import platform
import sys
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import PIL
import torch
import torchvision
from tqdm import tqdm

import pipeline
from extractors import catalog
from extractors.base import ClipInput, ClipRejected, Extractor
from extractors.frame_extractor import FrameExtractor
from extractors.frames import pack_jpegs
from models.device import resolve_device
from pipeline.core.config import Config, ExtractConfig
from pipeline.core.errors import InputError, first_line
from pipeline.core.ledger import DONE, Ledger
from pipeline.core.safe_hdf5 import open_checked
from pipeline.core.shard_lock import shard_lock
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir, ledger_stage
from pipeline.core.worker_lifetime import die_with_stage
from pipeline.datasets.manifest import load_manifest
from pipeline.datasets.manifest_scan import read_shard_rows
from pipeline.extract.compiled_forward import FixedShapeForward, compile_mode
from pipeline.extract.decode_ahead import DecodeAhead, LoadedClip
from pipeline.store import clips as clip_store
from pipeline.store import features as store
from pipeline.store.index import index_when_complete, manifest_order, rebuild_index  # noqa: F401 (rebuild_index: re-exported)
from pipeline.store.same_settings import differing_settings

log = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


# -- settings --------------------------------------------------------------------------
@contextlib.contextmanager
def precision_mode(device: torch.device, precision: str) -> Iterator[None]:
    """fp32 is strict fp32 (TF32 off, also for cuDNN convs, whose default is on); tf32 lets
    matmuls and convs use TF32 tensor cores; bf16/fp16 run under autocast."""
    tf32 = precision == "tf32"
    old_matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        with torch.backends.cudnn.flags(enabled=True, benchmark=device.type == "cuda",
                                        deterministic=False, allow_tf32=tf32):
            if precision in DTYPES:
                with torch.autocast(device_type=device.type, dtype=DTYPES[precision]):
                    yield
            else:
                yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_matmul


def package_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__,
            "h5py": h5py.__version__, "pillow": PIL.__version__}


def provenance(extractor: Extractor, settings: ExtractConfig, device: torch.device,
               config_hash: str) -> dict[str, Any]:
    """Attrs that make a feature file self-describing and reproducible."""
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or "cpu")
    return {"extractor": extractor.name, "recipe": json.dumps(extractor.recipe(), sort_keys=True),
            "weights": extractor.weights_id, "precision": settings.precision,
            "device": f"{device.type} ({device_name})", "store_dtype": settings.store_dtype,
            "package_versions": json.dumps(package_versions(), sort_keys=True),
            "avel_version": pipeline.__version__, "config_hash": config_hash,
            "compile": compile_mode(settings.compile) or "off",
            "feature_shape": json.dumps(list(extractor.output_shape()))}


# -- worker side: one clip → what each extractor needs ---------------------------------
Payload = tuple[str, Any]  # ("items", tensor) | ("frames", positions) | ("rejected", (reason, detail))


class ClipItems(torch.utils.data.Dataset):
    """Reads a cut clip once (in a worker process, its shard files opened once per worker)
    and prepares it for every extractor that still needs it: CPU `preprocess` items, or,
    with device decode, the positions of the extractor's frames among the JPEG bytes shipped
    once for all of them. Audio is read only when an audio extractor needs the clip.
    Returns (clip_id, {extractor: payload}, packed JPEGs or None)."""

    def __init__(self, clips_file: Path, clip_ids: list[str], extractors: list[Extractor],
                 wanted: list[tuple[str, ...]] | None = None, decode_on_device: bool = False) -> None:
        self.clips_file, self.clip_ids = clips_file, clip_ids
        self.extractors = {e.name: e for e in extractors}
        self.wanted = wanted or [tuple(self.extractors)] * len(clip_ids)
        self.decode_on_device = decode_on_device
        self.reader: clip_store.ClipReader | None = None

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, i: int) -> LoadedClip:
        clip_id, out, jpegs = self.load(i)
        return clip_id, out, pack_jpegs(jpegs) if jpegs else None

    def load(self, i: int) -> tuple[str, dict[str, Payload], list[bytes]]:
        """Clip `i`'s payloads and the JPEGs to ship for them (none without device decode)."""
        clip_id, names = self.clip_ids[i], self.wanted[i]
        if self.reader is None:
            self.reader = clip_store.ClipReader(self.clips_file)
        kinds = {self.extractors[n].input_kind for n in names}
        out: dict[str, Payload] = {}
        try:
            media = self.reader.read(clip_id, audio="waveform" in kinds, frames=kinds != {"waveform"})
        except Exception as exc:  # an unreadable clip fails for every extractor, not the shard
            return clip_id, {n: ("rejected", ("preprocess_error", f"{type(exc).__name__}: {exc}"))
                             for n in names}, []
        clip = ClipInput(audio=media.audio, sample_rate=media.sample_rate,
                         frames=media.frames, frame_times=media.frame_times)
        shipped: dict[int, int] = {}  # frame index in the clip → position among shipped JPEGs
        for name in names:
            extractor = self.extractors[name]
            try:
                if self.decode_on_device and isinstance(extractor, FrameExtractor):
                    positions = [shipped.setdefault(int(j), len(shipped))
                                 for j in extractor.frame_indices(clip)]
                    out[name] = ("frames", tuple(positions))  # ints: no shared-memory tensor
                else:
                    out[name] = ("items", extractor.preprocess(clip))
            except ClipRejected as exc:
                out[name] = ("rejected", (exc.reason, str(exc)))
            except Exception as exc:  # a broken clip must not stop the shard
                out[name] = ("rejected", ("preprocess_error", f"{type(exc).__name__}: {exc}"))
        return clip_id, out, [clip.frames[j] for j in shipped]


#: with device decode, one loader item carries this many clips. Handing an item to the main
#: process costs it about 1 ms of CPU whatever the item holds (the loader's bookkeeping, the
#: unpickling, and the file descriptor of its shared-memory tensor passed over a socket):
#: ~10 µs a frame for a 160-frame VGG-19 clip, one item per clip. Eight clips of JPEG bytes
#: are 3-10 MB; CPU-decoded items (pixels, 30-100x larger) stay one clip per item.
CLIPS_PER_ITEM = 8

#: what a loader item carries with device decode: each clip's (clip_id, payloads, JPEG lengths
#: or None), and the JPEG bytes of all of them, one after the other, in one tensor
ClipChunk = tuple[list[tuple[str, dict[str, Payload], tuple[int, ...] | None]], torch.Tensor]


class ClipChunks(torch.utils.data.Dataset):
    """`ClipItems` several clips at a time (`CLIPS_PER_ITEM`, in order): item k holds clips
    [k * per_item, (k + 1) * per_item), their JPEGs packed into one tensor. `unchunk` turns the
    items back into the clips `ClipItems` would give, in the main process."""

    def __init__(self, clips: ClipItems, per_item: int = CLIPS_PER_ITEM) -> None:
        self.clips, self.per_item = clips, per_item

    def __len__(self) -> int:
        return -(-len(self.clips) // self.per_item)

    def __getitem__(self, k: int) -> ClipChunk:
        entries: list[tuple[str, dict[str, Payload], tuple[int, ...] | None]] = []
        jpegs: list[bytes] = []
        for i in range(k * self.per_item, min((k + 1) * self.per_item, len(self.clips))):
            clip_id, out, shipped = self.clips.load(i)
            entries.append((clip_id, out, tuple(len(j) for j in shipped) if shipped else None))
            jpegs += shipped
        return entries, pack_jpegs(jpegs)[0]


def unchunk(chunks: Iterator[ClipChunk]) -> Iterator[LoadedClip]:
    """The clips of `ClipChunks` items, in order, each with its JPEGs as a view of the item's
    tensor (no copy)."""
    for entries, data in chunks:
        at = 0
        for clip_id, out, lengths in entries:
            packed = None
            if lengths is not None:
                size = sum(lengths)
                packed = (data[at:at + size], lengths)
                at += size
            yield clip_id, out, packed


# -- device side: items of many clips → full batches ------------------------------------
@dataclass
class _Pending:
    clip_id: str
    items: torch.Tensor
    sent: int = 0
    outputs: list[torch.Tensor] = field(default_factory=list)
    received: int = 0


class BatchPacker:
    """Packs the items of consecutive clips into batches of exactly `batch_size` (the last
    one may be short), runs `forward`, and hands back each clip once all its items are done."""

    def __init__(self, extractor: Extractor, batch_size: int, forward: Any = None) -> None:
        self.extractor, self.batch_size = extractor, batch_size
        self.forward = forward or extractor.forward
        self.queue: deque[_Pending] = deque()
        self.queued = 0
        self.items_done = 0

    def add(self, clip_id: str, items: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        self.queue.append(_Pending(clip_id, items))
        self.queued += len(items)
        return self._run(final=False)

    def flush(self) -> list[tuple[str, torch.Tensor]]:
        return self._run(final=True)

    @staticmethod
    def gather(pieces: list[tuple[_Pending, int, int]]) -> torch.Tensor:
        """One batch from slices of queued clips' items: a view when one clip fills it, else a
        copy on the items' device (for device-decoded items, device work, not host work)."""
        if len(pieces) == 1:
            pending, a, b = pieces[0]
            return pending.items[a:b]
        return torch.cat([p.items[a:b] for p, a, b in pieces])

    def _run(self, final: bool) -> list[tuple[str, torch.Tensor]]:
        finished: list[tuple[str, torch.Tensor]] = []
        while self.queued >= self.batch_size or (final and self.queued > 0):
            pieces: list[tuple[_Pending, int, int]] = []
            need = self.batch_size
            for pending in self.queue:
                if need == 0:
                    break
                take = min(need, len(pending.items) - pending.sent)
                if take:
                    pieces.append((pending, pending.sent, pending.sent + take))
                    pending.sent += take
                    need -= take
            out = self.forward(self.gather(pieces))
            size = sum(b - a for _, a, b in pieces)
            self.queued -= size
            self.items_done += size
            offset = 0
            for pending, a, b in pieces:
                pending.outputs.append(out[offset:offset + b - a])
                pending.received += b - a
                offset += b - a
            while self.queue and self.queue[0].received == len(self.queue[0].items):
                done = self.queue.popleft()
                finished.append((done.clip_id, self.join(done.outputs)))
        return finished

    @staticmethod
    def join(outputs: list[torch.Tensor]) -> torch.Tensor:
        """One clip's outputs from the batches it spans (device work, like `gather`)."""
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


# -- the stage ----------------------------------------------------------------------------
def clip_order(wd: Workdir, shard: Shard | None, available: set[str]) -> list[str]:
    """Manifest order (restricted to `shard` and to `available` clips), else sorted ids;
    clips cut but absent from the manifest come last."""
    order: list[str] = []
    if wd.manifest.is_file():
        table = load_manifest(wd.root) if shard is None else read_shard_rows(wd.root, shard)
        order = [str(c) for c in table["clip_id"]]
    ranked = [c for c in order if c in available]
    return ranked + sorted(available - set(ranked))


def settings_for(config: Config, name: str, **overrides: Any) -> ExtractConfig:
    """The extract section with CLI overrides (None = keep the config's value)."""
    return replace(config.extract, **{k: v for k, v in overrides.items() if v is not None})


def build_extractor(name: str, settings: ExtractConfig, weights: str | None = None) -> Extractor:
    options = dict(settings.options.get(name, {}))
    options["weights"] = weights or settings.weights.get(name, "pretrained")
    if options["weights"] == "random":
        options.setdefault("seed", settings.seed)
    if name not in catalog.names():
        raise InputError(f"unknown extractor {name!r}; known: {', '.join(catalog.names())}",
                         field="extractor")
    try:
        return catalog.create(name, **options)
    except FileNotFoundError as exc:
        raise InputError(str(exc), field=f"extract.weights.{name}") from None
    except TypeError as exc:
        raise InputError(f"bad options for {name}: {exc}", field=f"extract.options.{name}") from None
    except pickle.UnpicklingError:  # weights load with weights_only=True: a hostile pickle, unrun
        raise InputError(f"refused the weights file of {name}: it holds Python objects beyond "
                         "tensors, and loading them could run code",
                         field=f"extract.weights.{name} / --weights") from None
    except (KeyError, RuntimeError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        first = f"{type(exc).__name__}: {first}" if isinstance(exc, KeyError) else first
        where = f"extract.options.{name} / extract.weights.{name} / --weights"
        raise InputError(f"cannot build {name}: {first}", field=where) from None


def check_same_recipe(shard_file: Path, attrs: dict[str, Any]) -> None:
    """Refuse to mix features of different recipes or weights in one shard file."""
    keys = ("recipe", "weights", "precision", "store_dtype", "decode")
    expected = {k: attrs[k] for k in keys if k in attrs}
    found = differing_settings(shard_file, store.parts_dir(shard_file), expected)
    if found:
        path, changed = found
        key, (old, new) = next(iter(changed.items()))
        raise InputError(
            f"{path} holds features made with a different {key} ({old} vs now {new});"
            " extract into a fresh work directory or delete that extractor's features",
            file=path, field=key)


def decodes_on_device(settings: ExtractConfig, device: torch.device) -> bool:
    """`extract.decode`: auto = on the device when it is a CUDA one."""
    return settings.decode == "device" or (settings.decode == "auto" and device.type == "cuda")


@dataclass
class _Job:
    """One extractor's share of a pass: its own ledger, store file, provenance and batches."""

    name: str
    extractor: Extractor
    shard_file: Path
    attrs: dict[str, Any]
    ledger: Ledger
    todo: set[str]
    summary: dict[str, Any]
    packer: BatchPacker | None = None
    finished_ids: list[str] = field(default_factory=list)
    finished: list[torch.Tensor] = field(default_factory=list)  # folded clips, on the device
    done: int = 0
    failed: int = 0


def run_extract(workdir: str | Path, name: str, shard: Shard, config: Config, *,
                weights: str | None = None, progress: bool = True, extractor: Extractor | None = None,
                **overrides: Any) -> dict[str, Any]:
    """Extract features of every cut clip of `shard` not yet done; returns a summary.

    `extractor`: an already built one (a Ray actor or a test reuses it across shards);
    overrides: device, precision, batch_size, num_workers, store_dtype, flush_clips, prefetch, decode,
    decode_threads.
    """
    return run_extract_many(workdir, [name], shard, config, weights=weights, progress=progress,
                            extractors={name: extractor} if extractor is not None else None,
                            **overrides)[0]


def run_extract_many(workdir: str | Path, names: list[str], shard: Shard, config: Config, *,
                     weights: str | None = None, progress: bool = True,
                     extractors: dict[str, Extractor] | None = None, verify: bool = False,
                     retry_failed: str | None = None, **overrides: Any) -> list[dict[str, Any]]:
    """One pass over the shard's cut clips for several extractors: each clip is read (and,
    with device decode, decoded) once; each extractor keeps its own ledger, store and
    provenance, so each resumes on its own. Returns one summary per extractor, in order.
    A second run of an extractor on the same shard is refused at once (`shard_lock`);
    `verify` also redoes rows whose bytes no longer match the checksum in the ledger;
    `retry_failed` ("all" or a reason key, as for `avel cut`) puts failed clips back in the
    queue first, their attempts reset (after a config fix, without deleting state/)."""
    if len(set(names)) != len(names):
        raise InputError(f"extractor listed twice: {', '.join(names)}", field="extractor")
    with contextlib.ExitStack() as locks:
        for name in names:
            locks.enter_context(shard_lock(Workdir(workdir).root, ledger_stage("extract", name),
                                           shard.name))
        return _run_extract_many(workdir, names, shard, config, weights=weights,
                                 progress=progress, extractors=extractors, verify=verify,
                                 retry_failed=retry_failed, **overrides)


def _run_extract_many(workdir: str | Path, names: list[str], shard: Shard, config: Config, *,
                      weights: str | None, progress: bool,
                      extractors: dict[str, Extractor] | None, verify: bool,
                      retry_failed: str | None = None, **overrides: Any) -> list[dict[str, Any]]:
    wd = Workdir(workdir)
    settings = settings_for(config, names[0], **overrides)
    clips_file = wd.clips_file(shard)
    if not clips_file.is_file() and not clip_store.parts_dir(clips_file).is_dir():
        raise InputError("no cut clips for this shard; run `avel cut` first", file=clips_file)
    for path in [clips_file, *sorted(clip_store.parts_dir(clips_file).glob("part-*.h5"))]:
        if path.is_file():  # one walk per file: nothing read from outside it
            open_checked(path, what="clip store").close()
    available = clip_store.stored_clip_ids(clips_file)
    order = clip_order(wd, shard, available)

    if settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    try:
        device = resolve_device(settings.device)
    except ValueError as exc:
        raise InputError(str(exc), field="device") from None
    on_device = decodes_on_device(settings, device)
    jobs: list[_Job] = []
    for name in names:
        extractor = (extractors or {}).get(name)
        if extractor is None:
            extractor = build_extractor(name, settings, weights)
        elif extractor.name != name:
            raise ValueError(f"extractor {extractor.name!r} passed for {name!r}")
        if isinstance(extractor, FrameExtractor):  # frames over it are rejected undecoded
            extractor.max_pixels = config.cut.max_pixels
        attrs = provenance(extractor, settings, device, config.hash())
        attrs["decode"] = "device" if on_device and isinstance(extractor, FrameExtractor) else "cpu"
        shard_file = wd.features_file(name, shard)
        check_same_recipe(shard_file, attrs)

        ledger = Ledger(wd.ledger(ledger_stage("extract", name), shard))
        ledger.ensure(order)
        retried = ledger.requeue(None if retry_failed == "all" else retry_failed) if retry_failed else 0
        if retried:
            log.info("%s: re-queued %d failed clips (%s)", name, retried, retry_failed)
        try:
            stored = store.stored_clip_ids(shard_file)
        except OSError as exc:
            raise InputError(f"unreadable features file ({first_line(exc, 200)}); "
                             "move it aside and rerun, which extracts its clips again",
                             file=shard_file) from None
        # the file is the truth: a row deleted (or a shard file removed) is extracted again
        if verify:
            changed = rows_not_matching_ledger(shard_file, ledger)
            if changed:
                log.warning("%s: %d rows differ from their ledger checksum (e.g. %s); "
                            "extracting them again", shard_file, len(changed), changed[0])
            stored = stored - set(changed)
        lost = ledger.requeue_missing(stored, "output-missing", f"not in {shard_file.name}")
        if lost:
            log.warning("%s: %d clips marked done have no feature row (e.g. %s); extracting "
                        "them again", shard_file, len(lost), lost[0])
        status = ledger.status_of()
        reconciled = [c for c in stored if status.get(c) != DONE]
        for clip_id in reconciled:  # killed after its part was written, before the ledger update
            ledger.done(clip_id, info={"reconciled": True})
        todo = {c for c in ledger.todo(settings.max_attempts) if c not in stored and c in available}
        summary: dict[str, Any] = {"extractor": name, "shard": shard.name, "todo": len(todo), "done": 0,
                                   "failed": 0, "reconciled": len(reconciled),
                                   "requeued": len(lost), "retried": retried,
                                   "weights": extractor.weights_id,
                                   "device": str(device), "precision": settings.precision,
                                   "decode": attrs["decode"]}
        jobs.append(_Job(name, extractor, shard_file, attrs, ledger, todo, summary))

    try:
        pending = [j for j in jobs if j.todo]
        if pending:
            started = time.perf_counter()
            items, timings, decode = _extract_clips(pending, clips_file, order, settings, device,
                                                    on_device, progress)
            seconds = time.perf_counter() - started
            for job in pending:
                job.summary.update(done=job.done, failed=job.failed, seconds=round(seconds, 3),
                                   clips_per_s=round(job.done / seconds, 3) if seconds else None,
                                   items_per_s=round(items[job.name] / seconds, 3) if seconds else None,
                                   timings=timings)
                if job.summary["decode"] == "device":
                    job.summary.update(decode)
                if len(jobs) > 1:
                    job.summary["one_pass_with"] = [j.name for j in pending if j is not job]
    finally:
        for job in jobs:
            job.ledger.close()

    for job in jobs:
        shard_file = job.shard_file
        rows = store.consolidate(shard_file, order=order, attrs=job.attrs) if (
            shard_file.is_file() or store.parts_dir(shard_file).is_dir()) else 0
        job.summary["rows"] = rows
        index = index_when_complete(workdir, job.name, shard.count) if rows else None
        if index is not None:
            job.summary["index"] = str(index)
    return [job.summary for job in jobs]


def row_digest(row: np.ndarray) -> str:
    """sha256 (hex) of a row's bytes in the store dtype, hashed in place (a C-contiguous row
    is its bytes): what `row_checksum` shortens and `--verify` recomputes."""
    return hashlib.sha256(np.ascontiguousarray(row)).hexdigest()


def row_checksum(row: np.ndarray) -> str:
    """What the ledger keeps of a stored row: the first 16 hex digits of its `row_digest`."""
    return row_digest(row)[:16]


def rows_not_matching_ledger(shard_file: Path, ledger: Ledger) -> list[str]:
    """Clips whose stored row hashes differently from the checksum the ledger recorded when it
    was written (sha256 of the row's bytes in the store dtype); one row in memory at a time."""
    if not shard_file.is_file():
        return []
    expected = {e.clip_id: e.checksum for e in ledger.entries() if e.status == DONE and e.checksum}
    changed = []
    with open_checked(shard_file, what="features file") as fh:
        ids, rows = fh["clip_id"], fh["features"]
        for i, raw in enumerate(ids[()]):
            clip_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            want = expected.get(clip_id)
            digest = row_digest(rows[i])
            if want and digest[:len(want)] != want:
                changed.append(clip_id)
    return changed


def _extract_clips(jobs: list[_Job], clips_file: Path, order: list[str], settings: ExtractConfig,
                   device: torch.device, on_device: bool,
                   progress: bool) -> tuple[dict[str, int], dict[str, float], dict[str, int]]:
    clip_ids = [c for c in order if any(c in j.todo for j in jobs)]
    wanted = [tuple(j.name for j in jobs if c in j.todo) for c in clip_ids]
    dataset = ClipItems(clips_file, clip_ids, [j.extractor for j in jobs], wanted, on_device)
    # with device decode the workers ship bytes, several clips an item (`ClipChunks`); each
    # worker keeps about `prefetch` clips ready either way, and always one item beyond the one
    # the main process is taking, so that no worker waits for it
    prefetch = max(2, -(-settings.prefetch // CLIPS_PER_ITEM)) if on_device else settings.prefetch
    loader = torch.utils.data.DataLoader(
        ClipChunks(dataset) if on_device else dataset, batch_size=None, shuffle=False,
        num_workers=settings.num_workers, pin_memory=device.type == "cuda",
        prefetch_factor=prefetch if settings.num_workers else None,
        persistent_workers=False, worker_init_fn=functools.partial(die_with_stage, os.getpid()))
    out_dtype = torch.float16 if settings.store_dtype == "float16" else torch.float32
    by_name = {j.name: j for j in jobs}
    label = "+".join(by_name)
    bar = tqdm(total=len(clip_ids), unit="clip", file=sys.stderr, disable=not progress,
               desc=f"extract {label}", dynamic_ncols=True)
    # where the time goes: this thread waiting for its next clip (read + CPU decode, or read +
    # pack, and with decode threads also their decode), device decode + resize (summed over
    # the decode threads, which overlap this one's work; with decode_threads 0 on this
    # thread), device work (transfer + forward + fold; asynchronous on CUDA, so it shows up
    # where the host next waits: in store_s, at the flush's copy), store + ledger writes
    timings = {"wait_s": 0.0, "decode_s": 0.0, "device_s": 0.0, "store_s": 0.0}
    batches = iter(loader)  # workers fork here, before the networks touch the device
    loaded: Iterator[LoadedClip] = unchunk(batches) if on_device else batches
    mode = compile_mode(settings.compile)
    for job in jobs:
        job.extractor.to(device)
        forward = job.extractor.forward
        if mode is not None:  # one batch shape: one compiled graph for the whole run
            forward = FixedShapeForward(forward, settings.batch_size, mode)
        job.packer = BatchPacker(job.extractor, settings.batch_size, forward=forward)
    started = time.perf_counter()

    def write(job: _Job, final: bool) -> None:
        if job.finished_ids and (final or len(job.finished_ids) >= settings.flush_clips):
            t0 = time.perf_counter()
            arrays = rows_to_host(job.finished)
            store.write_part(job.shard_file, job.finished_ids, arrays, job.attrs)
            job.ledger.done_many((clip_id, row_checksum(arr))
                                 for clip_id, arr in zip(job.finished_ids, arrays))
            job.finished_ids, job.finished = [], []
            timings["store_s"] += time.perf_counter() - t0

    def collect(job: _Job, ready: list[tuple[str, torch.Tensor]]) -> None:
        t0 = time.perf_counter()
        for clip_id, outputs in ready:
            folded = fold_for_store(job.extractor, outputs, out_dtype)
            if tuple(folded.shape) != tuple(job.extractor.output_shape()):
                raise RuntimeError(f"{job.name} gave {tuple(folded.shape)} for {clip_id}, "
                                   f"expected {job.extractor.output_shape()}")
            job.finished_ids.append(clip_id)
            job.finished.append(folded)
            job.done += 1
        timings["device_s"] += time.perf_counter() - t0
        write(job, final=False)

    def reject(job: _Job, clip_id: str, reason: str, detail: str) -> None:
        job.ledger.failed(clip_id, reason, permanent=reason != "preprocess_error", detail=detail)
        log.warning("%s (%s): %s", clip_id, job.name, detail)
        job.failed += 1

    # device decode: several clips per decode call, in `decode_threads` threads ahead of this
    # one (0: each clip here, when reached); clips come out in loader order either way
    frames_per_batch = settings.batch_size * max(_frames_per_item(j.extractor) for j in jobs)
    decoded = DecodeAhead(loaded, {j.name: j.extractor for j in jobs}, device,
                          threads=settings.decode_threads if on_device else 0,
                          group_frames=frames_per_batch)
    ready_clips = iter(decoded)
    try:
        with torch.inference_mode(), precision_mode(device, settings.precision):
            while True:
                t0, inline = time.perf_counter(), decoded.inline_s
                try:
                    ready = next(ready_clips)
                except StopIteration:
                    break
                timings["wait_s"] += time.perf_counter() - t0 - (decoded.inline_s - inline)
                clip_id = ready.clip_id
                for name, (kind, payload) in ready.payloads.items():
                    job = by_name[name]
                    job.ledger.start(clip_id)
                    if kind == "rejected":
                        reject(job, clip_id, *payload)
                        continue
                    t0 = time.perf_counter()
                    items = payload.to(device, non_blocking=True)  # decoded ones are there already
                    ready_items = job.packer.add(clip_id, items)
                    timings["device_s"] += time.perf_counter() - t0
                    collect(job, ready_items)
                bar.update(1)
                if progress:
                    elapsed = max(time.perf_counter() - started, 1e-9)
                    frames = sum(j.packer.items_done * _frames_per_item(j.extractor) for j in jobs)
                    bar.set_postfix(frames_s=f"{frames / elapsed:.1f}", refresh=False)
            for job in jobs:
                t0 = time.perf_counter()
                finished = job.packer.flush()
                timings["device_s"] += time.perf_counter() - t0
                collect(job, finished)
        for job in jobs:
            write(job, final=True)
    finally:
        decoded.close()
        bar.close()
        if dataset.reader is not None:
            dataset.reader.close()
    timings["decode_s"] = decoded.decode_s
    decode = {"decode_threads": decoded.threads, "decode_calls": decoded.calls} if on_device else {}
    return ({j.name: j.packer.items_done for j in jobs}, {k: round(v, 3) for k, v in timings.items()},
            decode)


def fold_for_store(extractor: Extractor, outputs: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """One clip's outputs → its row in the store dtype, still on the device."""
    return extractor.fold(outputs).to(dtype)


def rows_to_host(rows: list[torch.Tensor]) -> np.ndarray:
    """A flush's folded clips (on the device) → one host array: the one host sync per flush."""
    return torch.stack(rows).cpu().numpy()


def _frames_per_item(extractor: Extractor) -> int:
    """Frames behind one forward item (8 for an R(2+1)D clip, 1 for an image)."""
    return int(getattr(extractor, "clip_len", 1))
