"""The download stage for one shard: pending clips → `raw/<shard>/<clip_id>.<ext>`.

K worker threads each own a `YoutubeDL` (downloads are I/O and ffmpeg subprocesses, so
threads suffice) and share a token bucket (the global request rate) and a throttle gate
(a pause for all when the host answers 429 or a bot check). The main thread owns the
plan: it hands clips out, records outcomes in the ledger, schedules retries with
exponential backoff and jitter, drives the progress bar, and writes the shard's summary.

Ledger writes per clip: `start` (a worker's own connection, just before the request, so a
crash mid-clip still counts the attempt), then `done` with the contract info for the cut
stage, or `failed` with the reason. Done clips are never fetched again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
import logging
import queue
import random
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.core import atomic
from pipeline.core.config import Config, DownloadConfig, resolve
from pipeline.core.errors import InputError, StageStopped, cannot_write
from pipeline.core.ledger import Ledger
from pipeline.core.shard_lock import shard_lock
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.cut.recipes import frames_recipe
from pipeline.datasets.manifest import MEDIA_COLUMNS
from pipeline.datasets.manifest_scan import read_shard_rows
from pipeline.download.failures import MESSAGE_RULES, PERMANENT, THROTTLED, TRANSIENT, Failure
from pipeline.download.fetch import ByteCounter, Fetcher, Outcome, finished_files
from pipeline.download.jobs import ClipJob, plan_jobs
from pipeline.download.pacing import ThrottleGate, TokenBucket, backoff_delay
from pipeline.download.ytdlp_options import build_options

log = logging.getLogger(__name__)

STAGE = "download"
THROTTLE_REASONS = sorted({r for _, k, r in MESSAGE_RULES if k == THROTTLED})
ALL = "all"


@dataclass
class RunStats:
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    adopted: int = 0
    retries: int = 0
    throttled: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def staging_dir(wd: Workdir, shard: Shard) -> Path:
    """yt-dlp's working files for this shard: beside the outputs, never among them."""
    return wd.root / "raw" / ".staging" / shard.name


def summary_path(wd: Workdir, shard: Shard) -> Path:
    return wd.ledger(STAGE, shard).with_suffix(".summary.json")


def run_download(workdir: str | Path, config: Config, shard: Shard, *,
                 workers: int | None = None, retry_failed: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Download every pending clip of `shard`; return the summary (also written as JSON).

    `retry_failed`: "all" re-queues every failed clip, a reason key only those failed for
    it. Raises `StageStopped` (exit code 3) when the host keeps throttling; everything
    finished until then stays done. A second run on the same shard is refused at once.
    """
    config = dataclasses.replace(config, download=checked_download_config(Workdir(workdir), config))
    with shard_lock(Workdir(workdir).root, STAGE, shard.name):
        return _run_download(workdir, config, shard, workers=workers, retry_failed=retry_failed,
                             progress=progress)


def checked_download_config(wd: Workdir, config: Config) -> DownloadConfig:
    """The download settings with their paths resolved, checked before anything is written
    (not even the shard's lock file), so a bad config leaves the work directory untouched."""
    dl = config.download
    if dl.cookies_file:  # relative to the work directory, like every config path
        cookies = resolve(wd.root, dl.cookies_file)
        if not cookies.is_file():
            raise InputError(f"cookies file not found: {cookies}", file=wd.config,
                             field="download.cookies_file")
        dl = dataclasses.replace(dl, cookies_file=str(cookies))
    return dl


def requeue_lost_downloads(wd: Workdir, ledger: Ledger) -> list[str]:
    """Clips marked done whose file is gone are fetched again (one stat per done clip)."""
    present = {e.clip_id for e in ledger.entries() if e.status == "done"
               and e.info.get("file") and (wd.root / str(e.info["file"])).is_file()}
    lost = ledger.requeue_missing(present, "output-missing", "downloaded file is gone")
    if lost:
        log.warning("%d clips marked downloaded have no file (e.g. %s); fetching them again",
                    len(lost), lost[0])
    return lost


def _run_download(workdir: str | Path, config: Config, shard: Shard, *,
                  workers: int | None, retry_failed: str | None,
                  progress: bool) -> dict[str, Any]:
    wd = Workdir(workdir)
    dl = config.download
    rows = read_shard_rows(wd.root, shard, MEDIA_COLUMNS)
    jobs = plan_jobs(rows, config)
    raw_dir = wd.raw_dir(shard)
    raw_dir.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(wd, shard)
    shutil.rmtree(staging, ignore_errors=True)  # .part files of a killed run
    atomic.remove_stale_temps(raw_dir)
    ledger_path = wd.ledger(STAGE, shard)
    with Ledger(ledger_path) as ledger:
        ledger.ensure(jobs)
        requeue_lost_downloads(wd, ledger)
        if retry_failed:
            known = ledger.counts()["reasons"]
            n = ledger.requeue(None if retry_failed == ALL else retry_failed)
            log.info("re-queued %d failed clips (%s)", n, retry_failed)
            if retry_failed != ALL and not n:
                log.warning("no clip of shard %s failed for %r; reasons here: %s", shard.name,
                            retry_failed, ", ".join(sorted(known)) or "none")
        for reason in THROTTLE_REASONS:  # the host's fault, not the clip's: try again
            ledger.requeue(reason)
        todo = [c for c in ledger.todo(dl.max_attempts) if c in jobs]
        stats = RunStats()
        stopped = None
        try:
            _Loop(wd, config, ledger, ledger_path, jobs, raw_dir, staging, stats,
                  workers or dl.workers, progress).run(todo)
        except StageStopped as exc:
            stopped = exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                staging.parent.rmdir()  # only when no other shard is staging
        summary = _summary(shard, config, ledger, stats, len(todo),
                           "throttled" if stopped else None)
    atomic.write_text(summary_path(wd, shard), json.dumps(summary, indent=2, sort_keys=True))
    if stopped:
        raise stopped
    return summary


class _Loop:
    def __init__(self, wd: Workdir, config: Config, ledger: Ledger, ledger_path: Path,
                 jobs: dict[str, ClipJob], raw_dir: Path, staging: Path, stats: RunStats,
                 n_workers: int, progress: bool) -> None:
        dl = config.download
        self.wd, self.dl, self.ledger, self.jobs, self.stats = wd, dl, ledger, jobs, stats
        self.ledger_path = ledger_path
        self.raw_dir, self.staging = raw_dir, staging
        self.n_workers = max(1, n_workers)
        self.progress = progress
        self.rng = random.Random()
        self.bucket = TokenBucket(dl.requests_per_s, burst=max(1.0, dl.requests_per_s))
        self.gate = ThrottleGate(dl.throttle_limit, dl.backoff_base_s, dl.backoff_max_s, self.rng)
        self.stop = threading.Event()
        self.bytes = ByteCounter()
        self.jobs_q: queue.Queue[str | None] = queue.Queue()
        self.results: queue.Queue[Outcome] = queue.Queue()
        self.throttled_tries: dict[str, int] = {}
        self.unwritable: OSError | None = None  # the first clip that could not be written
        self.finished = finished_files(raw_dir)  # read-only from here on
        # the cut will list the clip's packets (native frames): the probe here does instead
        self.list_packets = frames_recipe(config.cut.frames_recipe).rate is None

    # -- worker threads -------------------------------------------------------
    def _worker(self) -> None:
        options = build_options(self.dl, self.staging, self.bytes.hook)
        fetcher = Fetcher(self.wd, self.raw_dir, self.staging, options, self.finished,
                          local_files=self.dl.local_files, list_packets=self.list_packets)
        ledger = Ledger(self.ledger_path)  # SQLite connections are per thread
        try:
            while True:
                clip_id = self.jobs_q.get()
                if clip_id is None:
                    return
                self.results.put(self._one(clip_id, fetcher, ledger))
        finally:
            fetcher.close()
            ledger.close()

    def _one(self, clip_id: str, fetcher: Fetcher, ledger: Ledger) -> Outcome:
        job = self.jobs[clip_id]
        try:
            adopted = fetcher.adopt(job)
            if adopted is not None:
                return adopted
            if job.kind == "url":
                if not self.gate.wait(self.stop) or not self.bucket.acquire(self.stop):
                    return Outcome(clip_id, cancelled=True)
            ticket = self.gate.ticket()
            ledger.start(clip_id)
            outcome = fetcher.fetch(job)
            # tell the gate before taking the next clip, so that no worker slips another
            # request past a pause the host just asked for
            if outcome.failure is None:
                self.gate.succeeded()
            elif outcome.failure.kind == THROTTLED:
                outcome.pause_s = self.gate.throttled(outcome.failure.reason,
                                                      outcome.failure.retry_after_s, ticket)
            return outcome
        except OSError as exc:
            if not cannot_write(exc):
                log.exception("clip %s: unexpected error", clip_id)
                return Outcome(clip_id, failure=Failure(TRANSIENT, "internal-error", repr(exc)))
            # a copy's error names the source first and the file it writes second
            where = exc.filename2 or exc.filename or self.raw_dir
            return Outcome(clip_id, cannot_write=OSError(exc.errno, exc.strerror, str(where)))
        except Exception as exc:  # a bug: record it, keep the others going
            log.exception("clip %s: unexpected error", clip_id)
            return Outcome(clip_id, failure=Failure(TRANSIENT, "internal-error", repr(exc)))

    # -- main thread ------------------------------------------------------------
    def run(self, todo: list[str]) -> None:
        if not todo:
            return
        threads = [threading.Thread(target=self._worker, name=f"download-{i}", daemon=True)
                   for i in range(min(self.n_workers, len(todo)))]
        for t in threads:
            t.start()
        ready = list(todo)
        ready.reverse()  # pop() from the end keeps manifest order
        delayed: list[tuple[float, int, str]] = []
        in_flight, seq = 0, 0
        bar = tqdm(total=len(todo), unit="clip", file=sys.stderr, disable=not self.progress,
                   desc="download", dynamic_ncols=True)
        try:
            while (ready or delayed or in_flight) and not self.stop.is_set():
                now = time.monotonic()
                while delayed and delayed[0][0] <= now:
                    ready.append(heapq.heappop(delayed)[2])
                while ready and in_flight < len(threads) * 2:  # a short queue per worker
                    self.jobs_q.put(ready.pop())
                    in_flight += 1
                wait = min(0.5, max(0.01, delayed[0][0] - now)) if delayed else 0.5
                try:
                    outcome = self.results.get(timeout=wait)
                except queue.Empty:
                    _check_alive(threads)
                    continue
                in_flight -= 1
                if outcome.cannot_write is not None:
                    self.unwritable = self.unwritable or outcome.cannot_write
                    self.stop.set()  # every later clip would fail the same way
                    continue
                retry_in = self._record(outcome, bar)
                if retry_in is not None:
                    seq += 1
                    heapq.heappush(delayed, (time.monotonic() + retry_in, seq, outcome.clip_id))
                if self.gate.tripped.is_set():
                    self.stop.set()
            self._drain(in_flight, bar, threads)
        finally:
            self.stop.set()
            for _ in threads:
                self.jobs_q.put(None)
            bar.close()
        if self.unwritable is not None:
            # the clips it hit stay pending; finished ones are in the ledger: exit 5
            raise self.unwritable
        if self.gate.tripped.is_set():
            raise StageStopped(self._throttle_message())

    def _drain(self, in_flight: int, bar: tqdm, threads: list[threading.Thread]) -> None:
        """After a stop: let running clips finish and record them; queued ones cancel."""
        self.stop.set()
        while in_flight:
            try:
                outcome = self.results.get(timeout=0.5)
            except queue.Empty:
                _check_alive(threads)
                continue
            in_flight -= 1
            self._record(outcome, bar, retry=False)

    def _record(self, outcome: Outcome, bar: tqdm, retry: bool = True) -> float | None:
        """Write one outcome to the ledger; return a retry delay when it should run again."""
        clip_id, stats = outcome.clip_id, self.stats
        if outcome.cancelled or outcome.cannot_write is not None:  # stays pending
            return None
        if outcome.failure is None:
            self.ledger.done(clip_id, checksum=outcome.checksum, info=outcome.info)
            stats.done += 1
            stats.adopted += int(outcome.adopted)
            self._postfix(bar)
            bar.update(1)
            return None
        f = outcome.failure
        self.ledger.failed(clip_id, f.reason, permanent=f.permanent, detail=f.detail)
        if f.kind == THROTTLED:
            stats.throttled += 1
            self.throttled_tries[clip_id] = self.throttled_tries.get(clip_id, 0) + 1
            log.warning("throttled (%s); all workers pause %.1f s", f.reason, outcome.pause_s)
            self._postfix(bar)
            return 0.0 if retry and not self.gate.tripped.is_set() else None
        entry = self.ledger.get(clip_id)
        tries = (entry.attempts if entry else 1) - self.throttled_tries.get(clip_id, 0)
        if f.kind == TRANSIENT and retry and tries < self.dl.max_attempts:
            stats.retries += 1
            delay = backoff_delay(tries, self.dl.backoff_base_s, self.dl.backoff_max_s, self.rng)
            log.info("clip %s: %s (attempt %d), retry in %.1f s", clip_id, f.reason, tries, delay)
            return delay
        stats.failed += 1
        stats.reasons[f.reason] = stats.reasons.get(f.reason, 0) + 1
        log.info("clip %s failed: %s%s", clip_id, f.reason, "" if f.kind != PERMANENT else
                 " (permanent)")
        self._postfix(bar)
        bar.update(1)
        return None

    def _postfix(self, bar: tqdm) -> None:
        elapsed = max(1e-6, time.monotonic() - self.stats.started)
        bar.set_postfix(done=self.stats.done, failed=self.stats.failed,
                        throttled=self.stats.throttled,
                        MBps=f"{self.bytes.total / elapsed / 1e6:.2f}", refresh=False)

    def _throttle_message(self) -> str:
        counts = self.ledger.counts()
        return (f"the host throttled us ({self.gate.last_reason}) {self.gate.in_a_row} times in a"
                f" row (download.throttle_limit = {self.dl.throttle_limit}); stopped cleanly with"
                f" {counts['done']} clips done and kept. To go on: give a cookies file of a"
                f" logged-in browser session (download.cookies_file), slow down"
                f" (lower download.requests_per_s, raise download.sleep_s, fewer --workers) or"
                f" use another network (download.proxy), wait a while, then rerun the same"
                f" `avel download` command; it resumes where it stopped.")


def _check_alive(threads: list[threading.Thread]) -> None:
    """Fail loudly rather than wait forever for workers that are gone."""
    if not any(t.is_alive() for t in threads):
        raise RuntimeError("every download worker has died; see the log above")


def _summary(shard: Shard, config: Config, ledger: Ledger, stats: RunStats, n_todo: int,
             stopped: str | None) -> dict[str, Any]:
    counts = ledger.counts()
    elapsed = time.monotonic() - stats.started
    return {
        "stage": STAGE,
        "shard": shard.name,
        "mode": config.download.mode if config.dataset.source != "local" else "local",
        "clips": counts["done"] + counts["failed"] + counts["pending"],
        "done": counts["done"],
        "failed": counts["failed"],
        "pending": counts["pending"],
        "failed_by_reason": counts["reasons"],
        "stopped": stopped,
        "this_run": {
            "todo": n_todo,
            "done": stats.done,
            "adopted": stats.adopted,
            "failed": stats.failed,
            "failed_by_reason": stats.reasons,
            "retries": stats.retries,
            "throttled": stats.throttled,
            "seconds": round(elapsed, 3),
            "clips_per_s": round(stats.done / elapsed, 3) if elapsed > 0 else None,
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
