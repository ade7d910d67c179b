"""The cut stage for one shard: find each clip's input, cut clips in K worker processes,
and let this process alone write the shard's HDF5 file and ledger.

Finished clips are written in batches as atomic part files and only then marked done in
the ledger; at the end the parts fold into `clips/<shard>.h5`. A run killed at any point
leaves complete parts and a readable ledger, and the rerun cuts only what is missing.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.core import atomic, carried_probe, reasons
from pipeline.core.config import Config
from pipeline.core.errors import InputError, first_line
from pipeline.core.ledger import DONE, FAILED, Entry, Ledger
from pipeline.core.shard_lock import shard_lock
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.core.worker_lifetime import die_with
from pipeline.cut.checks import Span
from pipeline.cut.clip import CutResult, CutSettings, CutTask, cut_clip
from pipeline.cut.recipes import frames_recipe
from pipeline.datasets.manifest import MEDIA_COLUMNS
from pipeline.datasets.manifest_scan import read_shard_rows
from pipeline.store import clips as clip_store
from pipeline.store.same_settings import differing_settings

log = logging.getLogger(__name__)
STAGE, LOOSE_STAGE = "cut", "cut-loose"  # loose files have their own ledger
# settings that change the bytes of a cut clip: a shard file must not mix them
RECIPE_KEYS = ("audio_recipe", "frames_recipe", "jpeg_quality", "scale")


@dataclass
class CutSummary:
    shard: str
    done: int = 0
    failed: int = 0
    waiting: int = 0  # not downloaded yet: left pending for a later run
    skipped: int = 0  # already done before this run
    requeued: int = 0  # marked done, but missing from the shard file: cut again
    reasons: dict[str, int] = field(default_factory=dict)
    output: str = ""


def ffmpeg_version() -> str:
    """e.g. '5.1.9-0+deb12u1': the third word of `ffmpeg -version`."""
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=False).stdout
    words = out.split()
    return words[2] if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else "unknown"


def settings_from(config: Config, workers: int | None = None) -> CutSettings:
    c = config.cut
    quality = c.jpeg_quality
    if quality is None:
        quality = frames_recipe(c.frames_recipe).jpeg_quality
    # one ffmpeg thread each when the workers already fill the cores (bench_cut: 1.1-1.2x
    # more frames per CPU-second than ffmpeg's own threads fighting the other workers)
    busy = (workers or c.workers) >= (os.cpu_count() or 1)
    return CutSettings(audio_recipe=c.audio_recipe, frames_recipe=c.frames_recipe,
                       jpeg_quality=quality, scale=c.scale, allow=c.allowed,
                       max_pixels=c.max_pixels, max_pad_s=c.max_pad_s,
                       span_slack_s=c.span_slack_s, timeout_s=c.timeout_s,
                       ffmpeg_version=ffmpeg_version(), ffmpeg_threads=1 if busy else None)


def _relative(wd: Workdir, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(wd.root))
    except ValueError:
        return str(path)


def plan_tasks(wd: Workdir, shard: Shard, rows: Any, loose: bool, download_attempts: int = 3
               ) -> tuple[list[CutTask], list[str], dict[str, Entry]]:
    """(tasks with their input file and span, clip ids still waiting for the download,
    clip id -> download entry of clips whose download failed for good).

    Input contract: the download ledger's `info` gives `file` (relative to the workdir) and
    `offset_s` (source time of the file's t=0) and, for a section whose audio timestamps
    are early against its video, `audio_shift_s`, and the download's probe of the file
    (`probe`, core/carried_probe; the worker checks it against the file); without an
    entry, a local `source` path is read directly with offset 0. A download failed for
    good is permanent, or transient with no attempts left (what `avel download` itself no
    longer retries)."""
    downloads: dict[str, dict] = {}
    gone: dict[str, Entry] = {}
    dl_path = wd.ledger("download", shard)
    if dl_path.is_file():
        with Ledger(dl_path) as dl:
            for e in dl.entries():
                if e.status == DONE:
                    downloads[e.clip_id] = e.info
                elif e.status == FAILED and (e.permanent or e.attempts >= download_attempts):
                    gone[e.clip_id] = e
    loose_root = str(wd.loose_dir()) if loose else None
    tasks, waiting = [], []
    for row in rows.itertuples(index=False):
        info = downloads.get(row.clip_id)
        if info and info.get("file"):
            path = (wd.root / info["file"]).resolve()
            offset = float(info.get("offset_s") or 0.0)
            shift = float(info.get("audio_shift_s") or 0.0)
            carried = info.get(carried_probe.KEY)
        elif row.clip_id in gone:
            continue
        elif "://" not in str(row.source):  # a local file (a missing one fails as missing-file)
            path = (wd.root / str(row.source)).resolve()
            offset = shift = 0.0
            carried = None
        else:
            waiting.append(row.clip_id)
            continue
        span = Span(float(row.start_s) - offset, float(row.end_s) - offset)
        tasks.append(CutTask(row.clip_id, str(path), _relative(wd, path), span, loose_root,
                             audio_shift_s=shift, probe=carried))
    wanted = set(rows["clip_id"]) if len(rows) else set()
    return tasks, waiting, {c: e for c, e in gone.items() if c in wanted and c not in downloads}


def _results(tasks: list[CutTask], settings: CutSettings, workers: int,
             on_start: Callable[[str], None]) -> Iterator[CutResult]:
    """Results in completion order; `on_start(clip_id)` runs just before a clip is handed out."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            on_start(task.clip_id)
            yield cut_clip(task, settings)
        return
    context = get_context("forkserver")  # no inherited SQLite handles or tqdm threads
    context.set_forkserver_preload(["pipeline.cut.clip", "pipeline.core.worker_lifetime"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=die_with, initargs=(os.getpid(),)) as pool:
        pending = list(reversed(tasks))
        running: set[Future] = set()
        while pending or running:
            while pending and len(running) < 2 * workers:
                task = pending.pop()
                on_start(task.clip_id)
                running.add(pool.submit(cut_clip, task, settings))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()


def recipe_attrs(settings: CutSettings) -> dict[str, str]:
    return {"audio_recipe": settings.audio_recipe, "frames_recipe": settings.frames_recipe,
            "jpeg_quality": "ffmpeg-default" if settings.jpeg_quality is None
            else str(settings.jpeg_quality), "scale": settings.scale or "source"}


def check_recipe(shard_file: Path, recipe: dict[str, str]) -> None:
    """Refuse to add clips cut with other settings to an existing shard file."""
    found = differing_settings(shard_file, clip_store.parts_dir(shard_file),
                               {k: recipe[k] for k in RECIPE_KEYS})
    if found:
        path, changed = found
        what = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise InputError(f"clips here were cut with other settings ({what}); use another "
                         "work directory, or delete this shard file and state/cut to recut",
                         file=path, field="cut")


def requeue_lost_clips(ledger: Ledger, shard_file: Path) -> list[str]:
    """Clips the ledger calls done but the shard file (and its parts) lack are cut again: a
    deleted group or a removed shard file must not leave `cut` saying "already done"."""
    try:
        stored = clip_store.stored_clip_ids(shard_file)
    except OSError as exc:
        raise InputError(f"unreadable clip store ({first_line(exc, 200)}); move it "
                         "aside and rerun `avel cut`, which cuts its clips again",
                         file=shard_file) from None
    lost = ledger.requeue_missing(stored, "output-missing", f"not in {shard_file.name}")
    if lost:
        log.warning("%s: %d clips marked done are missing (e.g. %s); cutting them again",
                    shard_file, len(lost), lost[0])
    return lost


def run_cut(workdir: str | Path, config: Config, shard: Shard, *, workers: int | None = None,
            loose: bool | None = None, progress: bool = True,
            retry_failed: str | None = None) -> CutSummary:
    """Cut every clip of `shard` that is not done yet; returns counts for the report.

    `retry_failed`: "all" cuts every failed clip again, a reason key only those failed for
    it (a permanent failure is otherwise final, e.g. after adding a reason to cut.allow).
    A second run on the same shard is refused at once (`shard_lock`)."""
    with shard_lock(Workdir(workdir).root, STAGE, shard.name):
        return _run_cut(workdir, config, shard, workers=workers, loose=loose, progress=progress,
                        retry_failed=retry_failed)


def _run_cut(workdir: str | Path, config: Config, shard: Shard, *, workers: int | None,
             loose: bool | None, progress: bool, retry_failed: str | None) -> CutSummary:
    wd = Workdir(workdir)
    loose = config.cut.loose if loose is None else loose
    workers = config.cut.workers if workers is None else workers
    settings = settings_from(config, workers)
    rows = read_shard_rows(wd.root, shard, MEDIA_COLUMNS)
    shard_file = wd.clips_file(shard)
    summary = CutSummary(shard=shard.name, output=str(wd.loose_dir() if loose else shard_file))
    # Leftovers of a killed run of THIS shard only: other shards may be writing beside us.
    atomic.remove_stale_temps(shard_file.parent, shard_file.name)
    atomic.remove_stale_temps(clip_store.parts_dir(shard_file))
    mine = set(rows["clip_id"])
    for stale in (wd.loose_dir() / "audio").glob(".*.wav.*.tmp"):
        if stale.name[1:].rsplit(".wav.", 1)[0] in mine:
            stale.unlink(missing_ok=True)
    for stale in (wd.loose_dir() / "frames").glob(".*.tmp"):
        if stale.name[1:].rsplit(".", 2)[0] in mine:
            shutil.rmtree(stale, ignore_errors=True)
    recipe = recipe_attrs(settings)
    if not loose:
        check_recipe(shard_file, recipe)
    with Ledger(wd.ledger(LOOSE_STAGE if loose else STAGE, shard)) as ledger:
        ledger.ensure(rows["clip_id"])
        if not loose:
            summary.requeued = len(requeue_lost_clips(ledger, shard_file))
        if retry_failed:
            n = ledger.requeue(None if retry_failed == "all" else retry_failed)
            log.info("re-queued %d failed clips (%s)", n, retry_failed)
        todo = set(ledger.todo())
        # clips whose part was written by a run killed before it could mark them done
        if not loose and todo:
            for clip_id in todo & clip_store.stored_clip_ids(shard_file):
                ledger.done(clip_id, info={"recovered": True})
            todo = set(ledger.todo())
        summary.skipped = len(rows) - len(todo)
        tasks, waiting, gone = plan_tasks(wd, shard, rows[rows["clip_id"].isin(todo)], loose,
                                          config.download.max_attempts)
        summary.waiting = len(waiting)
        for clip_id, entry in gone.items():
            # not permanent here: a download retried later (--retry-failed) makes it cuttable
            reason = f"download-failed:{entry.reason or 'unknown'}"
            ledger.failed(clip_id, reason, permanent=False, detail=entry.detail or "")
            summary.failed += 1
            summary.reasons[reason] = summary.reasons.get(reason, 0) + 1
        batch: dict[str, CutResult] = {}
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal last_flush
            if batch:
                clip_store.write_part(shard_file, {c: r.media for c, r in batch.items()},
                                      {"stage": STAGE, "shard": shard.name, **recipe})
                for clip_id, result in batch.items():
                    ledger.done(clip_id, checksum=result.checksum, info=result.info)
                summary.done += len(batch)
                batch.clear()
            last_flush = time.monotonic()

        bar = tqdm(total=len(tasks), desc=f"cut {shard.name}", unit="clip", disable=not progress)
        try:
            for result in _results(tasks, settings, workers, ledger.start):
                bar.update(1)
                if result.reason:
                    permanent = reasons.kind(result.reason, STAGE) == reasons.PERMANENT
                    ledger.failed(result.clip_id, result.reason, permanent=permanent,
                                  detail=result.detail)
                    summary.failed += 1
                    summary.reasons[result.reason] = summary.reasons.get(result.reason, 0) + 1
                    log.warning("%s: %s (%s)", result.clip_id, result.reason, result.detail)
                elif loose:
                    ledger.done(result.clip_id, checksum=result.checksum, info=result.info)
                    summary.done += 1
                else:
                    batch[result.clip_id] = result
                    if len(batch) >= config.cut.batch_clips or time.monotonic() - last_flush > 30:
                        flush()
        finally:  # an interrupt keeps the clips already cut
            flush()
            bar.close()
    if not loose:
        clip_store.consolidate(shard_file, {"stage": STAGE, "shard": shard.name, **recipe,
                                            "ffmpeg_version": settings.ffmpeg_version})
    return summary
