"""The extract stage: one runner that drives every extractor over one shard's cut clips.

Flow: cut clips (`clips/<shard>.h5`) → worker processes decode and preprocess one clip each
(torch DataLoader: shared memory, pinned-memory prefetch) → the main process packs the items
of many clips into full batches on the device (channels_last, inference_mode, autocast for
bf16/fp16) → each finished clip is folded (`assemble`) → every `flush_clips` clips a store
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
from models.device import resolve_device
from pipeline.core.config import Config, ExtractConfig
from pipeline.core.errors import InputError
from pipeline.core.ledger import DONE, Ledger
from pipeline.core.safe_hdf5 import open_checked
from pipeline.core.shard_lock import shard_lock
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir, ledger_stage
from pipeline.core.worker_lifetime import die_with_stage
from pipeline.datasets.manifest import load_manifest
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
            "feature_shape": json.dumps(list(extractor.output_shape()))}


# -- worker side: one clip → its items ------------------------------------------------
class ClipItems(torch.utils.data.Dataset):
    """Reads a cut clip and runs the extractor's CPU `preprocess` (in a worker process).
    Returns (clip_id, items, None) or (clip_id, None, (reason, detail))."""

    def __init__(self, clips_file: Path, clip_ids: list[str], extractor: Extractor) -> None:
        self.clips_file, self.clip_ids, self.extractor = clips_file, clip_ids, extractor

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor | None, tuple[str, str] | None]:
        clip_id = self.clip_ids[i]
        try:
            media = clip_store.read_clip(self.clips_file, clip_id)
            clip = ClipInput(audio=media.audio, sample_rate=media.sample_rate,
                             frames=media.frames, frame_times=media.frame_times)
            return clip_id, self.extractor.preprocess(clip), None
        except ClipRejected as exc:
            return clip_id, None, (exc.reason, str(exc))
        except Exception as exc:  # a broken clip must not stop the shard
            return clip_id, None, ("preprocess_error", f"{type(exc).__name__}: {exc}")


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

    def __init__(self, extractor: Extractor, batch_size: int) -> None:
        self.extractor, self.batch_size = extractor, batch_size
        self.queue: deque[_Pending] = deque()
        self.queued = 0
        self.items_done = 0

    def add(self, clip_id: str, items: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        self.queue.append(_Pending(clip_id, items))
        self.queued += len(items)
        return self._run(final=False)

    def flush(self) -> list[tuple[str, torch.Tensor]]:
        return self._run(final=True)

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
            batch = (pieces[0][0].items[pieces[0][1]:pieces[0][2]] if len(pieces) == 1
                     else torch.cat([p.items[a:b] for p, a, b in pieces]))
            out = self.extractor.forward(batch)
            self.queued -= len(batch)
            self.items_done += len(batch)
            offset = 0
            for pending, a, b in pieces:
                pending.outputs.append(out[offset:offset + b - a])
                pending.received += b - a
                offset += b - a
            while self.queue and self.queue[0].received == len(self.queue[0].items):
                done = self.queue.popleft()
                outs = done.outputs[0] if len(done.outputs) == 1 else torch.cat(done.outputs)
                finished.append((done.clip_id, outs))
        return finished


# -- the stage ----------------------------------------------------------------------------
def clip_order(wd: Workdir, shard: Shard | None, available: set[str]) -> list[str]:
    """Manifest order (restricted to `shard` and to `available` clips), else sorted ids;
    clips cut but absent from the manifest come last."""
    order: list[str] = []
    if wd.manifest.is_file():
        order = [str(c) for c in load_manifest(wd.root)["clip_id"]]
        if shard is not None:
            order = [c for c in order if shard.owns(c)]
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
        raise InputError(f"cannot build {name}: {first}",
                         field=f"extract.options.{name} / extract.weights.{name} / --weights") from None


def check_same_recipe(shard_file: Path, attrs: dict[str, Any]) -> None:
    """Refuse to mix features of different recipes or weights in one shard file."""
    keys = ("recipe", "weights", "precision", "store_dtype")
    found = differing_settings(shard_file, store.parts_dir(shard_file), {k: attrs[k] for k in keys})
    if found:
        path, changed = found
        key, (old, new) = next(iter(changed.items()))
        raise InputError(
            f"{path} holds features made with a different {key} ({old} vs now {new});"
            " extract into a fresh work directory or delete that extractor's features",
            file=path, field=key)


def run_extract(workdir: str | Path, name: str, shard: Shard, config: Config, *,
                weights: str | None = None, progress: bool = True, extractor: Extractor | None = None,
                verify: bool = False, **overrides: Any) -> dict[str, Any]:
    """Extract features of every cut clip of `shard` not yet done; returns a summary.

    `extractor`: an already built one (a Ray actor or a test reuses it across shards);
    overrides: device, precision, batch_size, num_workers, store_dtype, flush_clips, prefetch.
    A second run of one extractor on the same shard is refused at once (`shard_lock`);
    `verify` also redoes rows whose bytes no longer match the checksum in the ledger.
    """
    with shard_lock(Workdir(workdir).root, ledger_stage("extract", name), shard.name):
        return _run_extract(workdir, name, shard, config, weights=weights, progress=progress,
                            extractor=extractor, verify=verify, **overrides)


def _run_extract(workdir: str | Path, name: str, shard: Shard, config: Config, *,
                 weights: str | None, progress: bool, extractor: Extractor | None,
                 verify: bool = False, **overrides: Any) -> dict[str, Any]:
    wd = Workdir(workdir)
    settings = settings_for(config, name, **overrides)
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
    if extractor is None:
        extractor = build_extractor(name, settings, weights)
    elif extractor.name != name:
        raise ValueError(f"extractor {extractor.name!r} passed for {name!r}")
    try:
        device = resolve_device(settings.device)
    except ValueError as exc:
        raise InputError(str(exc), field="device") from None
    attrs = provenance(extractor, settings, device, config.hash())
    shard_file = wd.features_file(name, shard)
    check_same_recipe(shard_file, attrs)

    ledger = Ledger(wd.ledger(ledger_stage("extract", name), shard))
    ledger.ensure(order)
    try:
        stored = store.stored_clip_ids(shard_file)
    except OSError as exc:
        raise InputError(f"unreadable features file ({str(exc).splitlines()[0][:200]}); move "
                         "it aside and rerun, which extracts its clips again",
                         file=shard_file) from None
    # the file is the truth: a row deleted (or a shard file removed) is extracted again
    if verify:
        changed = rows_not_matching_ledger(shard_file, ledger)
        if changed:
            log.warning("%s: %d rows differ from their ledger checksum (e.g. %s); extracting "
                        "them again", shard_file, len(changed), changed[0])
        stored = stored - set(changed)
    lost = ledger.requeue_missing(stored, "output-missing", f"not in {shard_file.name}")
    if lost:
        log.warning("%s: %d clips marked done have no feature row (e.g. %s); extracting them "
                    "again", shard_file, len(lost), lost[0])
    status = ledger.status_of()
    reconciled = [c for c in stored if status.get(c) != DONE]
    for clip_id in reconciled:  # killed after its part was written, before the ledger update
        ledger.done(clip_id, info={"reconciled": True})
    todo = [c for c in ledger.todo(settings.max_attempts) if c not in stored and c in available]

    summary: dict[str, Any] = {"extractor": name, "shard": shard.name, "todo": len(todo), "done": 0,
                               "failed": 0, "reconciled": len(reconciled), "requeued": len(lost),
                               "weights": extractor.weights_id,
                               "device": str(device), "precision": settings.precision}
    if todo:
        started = time.perf_counter()
        done, failed, items, timings = _extract_clips(extractor, clips_file, todo, settings, device,
                                                      shard_file, attrs, ledger, progress)
        seconds = time.perf_counter() - started
        summary.update(done=done, failed=failed, seconds=round(seconds, 3),
                       clips_per_s=round(done / seconds, 3) if seconds else None,
                       items_per_s=round(items / seconds, 3) if seconds else None, timings=timings)
    ledger.close()

    rows = store.consolidate(shard_file, order=order, attrs=attrs) if (
        shard_file.is_file() or store.parts_dir(shard_file).is_dir()) else 0
    summary["rows"] = rows
    index = index_when_complete(workdir, name, shard.count) if rows else None
    if index is not None:
        summary["index"] = str(index)
    return summary


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
            digest = hashlib.sha256(np.ascontiguousarray(rows[i]).tobytes()).hexdigest()
            if want and digest[:len(want)] != want:
                changed.append(clip_id)
    return changed


def _extract_clips(extractor: Extractor, clips_file: Path, todo: list[str], settings: ExtractConfig,
                   device: torch.device, shard_file: Path, attrs: dict[str, Any], ledger: Ledger,
                   progress: bool) -> tuple[int, int, int, dict[str, float]]:
    loader = torch.utils.data.DataLoader(
        ClipItems(clips_file, todo, extractor), batch_size=None, shuffle=False,
        num_workers=settings.num_workers, pin_memory=device.type == "cuda",
        prefetch_factor=settings.prefetch if settings.num_workers else None,
        persistent_workers=False, worker_init_fn=functools.partial(die_with_stage, os.getpid()))
    packer = BatchPacker(extractor, settings.batch_size)
    out_dtype = np.float16 if settings.store_dtype == "float16" else np.float32
    finished_ids: list[str] = []
    finished: list[np.ndarray] = []
    done = failed = 0
    bar = tqdm(total=len(todo), unit="clip", file=sys.stderr, disable=not progress,
               desc=f"extract {extractor.name}", dynamic_ncols=True)
    # where the time goes: waiting for workers (decode), device work (transfer + forward +
    # assemble; .cpu() in assemble waits for the device), store + ledger writes
    timings = {"wait_s": 0.0, "device_s": 0.0, "store_s": 0.0}
    batches = iter(loader)  # workers fork here, before the network touches the device
    extractor.to(device)
    started = time.perf_counter()

    def write(final: bool) -> None:
        nonlocal finished_ids, finished
        if finished_ids and (final or len(finished_ids) >= settings.flush_clips):
            t0 = time.perf_counter()
            store.write_part(shard_file, finished_ids, np.stack(finished), attrs)
            for clip_id, arr in zip(finished_ids, finished):
                ledger.done(clip_id, checksum=hashlib.sha256(arr.tobytes()).hexdigest()[:16])
            finished_ids, finished = [], []
            timings["store_s"] += time.perf_counter() - t0

    def collect(ready: list[tuple[str, torch.Tensor]]) -> None:
        nonlocal done
        t0 = time.perf_counter()
        for clip_id, outputs in ready:
            array = extractor.assemble(outputs).astype(out_dtype, copy=False)
            if array.shape != tuple(extractor.output_shape()):
                raise RuntimeError(f"{extractor.name} gave {array.shape} for {clip_id}, "
                                   f"expected {extractor.output_shape()}")
            finished_ids.append(clip_id)
            finished.append(array)
            done += 1
            bar.update(1)
        timings["device_s"] += time.perf_counter() - t0
        write(final=False)
        elapsed = max(time.perf_counter() - started, 1e-9)
        bar.set_postfix(frames_s=f"{packer.items_done * _frames_per_item(extractor) / elapsed:.1f}",
                        refresh=False)

    try:
        with torch.inference_mode(), precision_mode(device, settings.precision):
            while True:
                t0 = time.perf_counter()
                try:
                    clip_id, items, rejected = next(batches)
                except StopIteration:
                    break
                timings["wait_s"] += time.perf_counter() - t0
                ledger.start(clip_id)
                if rejected is not None:
                    reason, detail = rejected
                    ledger.failed(clip_id, reason, permanent=reason != "preprocess_error", detail=detail)
                    log.warning("%s: %s", clip_id, detail)
                    failed += 1
                    bar.update(1)
                    continue
                t0 = time.perf_counter()
                ready = packer.add(clip_id, items.to(device, non_blocking=True))
                timings["device_s"] += time.perf_counter() - t0
                collect(ready)
            t0 = time.perf_counter()
            ready = packer.flush()
            timings["device_s"] += time.perf_counter() - t0
            collect(ready)
        write(final=True)
    finally:
        bar.close()
    return done, failed, packer.items_done, {k: round(v, 3) for k, v in timings.items()}


def _frames_per_item(extractor: Extractor) -> int:
    """Frames behind one forward item (8 for an R(2+1)D clip, 1 for an image)."""
    return int(getattr(extractor, "clip_len", 1))
