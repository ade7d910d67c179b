"""The download stage for one shard: pending clips → `raw/<shard>/<clip_id>.<ext>`.

K worker threads each own a `YoutubeDL` per identity (downloads are I/O and ffmpeg
subprocesses, so threads suffice) and share an identity pool (download/identities.py): each
clip attempt takes an identity that is neither pausing nor tripped, and a 429 or a bot
check pauses only the identity it answered, so work moves to the others; with a single
identity (no `download.identities`) that is the old pause for all. The main thread owns the
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.core import atomic
from pipeline.core.config import Config, DownloadConfig, resolve
from pipeline.core.errors import EXIT_ENVIRONMENT, InputError, StageStopped
from pipeline.core.ledger import Ledger
from pipeline.core.reasons import REASONS
from pipeline.core.shard_lock import shard_lock
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir
from pipeline.cut.recipes import frames_recipe
from pipeline.datasets.manifest import MEDIA_COLUMNS, load_manifest, shard_rows
from pipeline.download.breaker import FailureStreak
from pipeline.download.failures import (
    ENVIRONMENT,
    MESSAGE_RULES,
    PERMANENT,
    THROTTLED,
    TRANSIENT,
    WARNED,
    Failure,
)
from pipeline.download.fetch import ByteCounter, Fetcher, Outcome, finished_files
from pipeline.download.identities import (
    IdentityPool,
    Lease,
    record_attempt,
    resolve_identities,
    with_identity,
)
from pipeline.download.jobs import ClipJob, plan_jobs
from pipeline.download.js_runtime import find_js_runtime
from pipeline.download.pacing import backoff_delay
from pipeline.download.ytdlp_options import build_options

log = logging.getLogger(__name__)

STAGE = "download"
THROTTLE_REASONS = sorted({r for _, k, r in MESSAGE_RULES if k == THROTTLED})
ENVIRONMENT_REASONS = sorted({r for _, k, r in MESSAGE_RULES if k == ENVIRONMENT})
ALL = "all"


@dataclass
class RunStats:
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    adopted: int = 0
    retries: int = 0
    throttled: int = 0
    left_pending: int = 0  # stopped by the environment or the failure streak: not the clips'
    reasons: dict[str, int] = field(default_factory=dict)
    # identity -> {done, failed, throttled} in this run (clips fetched, not adopted)
    identities: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, identity: str | None, key: str) -> None:
        if identity:
            row = self.identities.setdefault(identity, {"done": 0, "failed": 0, "throttled": 0})
            row[key] += 1


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
    it. Raises `StageStopped` (exit code 3) when the host keeps throttling, and (exit code
    6) when this machine cannot download (an environment failure such as a missing JS
    runtime, or `failure_streak_limit` attempts in a row failing for one reason); everything
    finished until then stays done, and the clips stopped that way stay pending. A second
    run on the same shard is refused at once.
    """
    wd = Workdir(workdir)
    config = dataclasses.replace(config, download=checked_download_config(wd, config))
    resolve_identities(wd.root, config.download, wd.config)  # checked before the lock too
    with shard_lock(wd.root, STAGE, shard.name):
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
    if dl.cache_dir:  # shared by every worker, whatever directory the stage runs from
        dl = dataclasses.replace(dl, cache_dir=str(resolve(wd.root, dl.cache_dir)))
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
    rows = shard_rows(load_manifest(wd.root, MEDIA_COLUMNS), shard)
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
        for reason in THROTTLE_REASONS + ENVIRONMENT_REASONS:  # not the clip's fault: again
            ledger.requeue(reason)
        todo = [c for c in ledger.todo(dl.max_attempts) if c in jobs]
        if any(jobs[c].kind == "url" for c in todo) and find_js_runtime() is None:
            log.warning("no JavaScript runtime found (deno >= 2.3 or node >= 22): YouTube "
                        "downloads will fail; `pip install -c constraints.txt deno` fixes it")
        stats = RunStats()
        stopped, why = None, None
        loop = _Loop(wd, config, ledger, ledger_path, jobs, raw_dir, staging, stats,
                     workers or dl.workers, progress)
        try:
            loop.run(todo)
        except StageStopped as exc:
            stopped, why = exc, loop.stopped_by
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                staging.parent.rmdir()  # only when no other shard is staging
        summary = _summary(shard, config, ledger, stats, len(todo), why)
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
        self.pool = IdentityPool(resolve_identities(wd.root, dl, wd.config), dl, self.rng)
        self.record_identity = bool(dl.identities)  # the ledger names it only when chosen
        self.stop = threading.Event()
        self.bytes = ByteCounter()
        self.jobs_q: queue.Queue[str | None] = queue.Queue()
        self.results: queue.Queue[Outcome] = queue.Queue()
        self.throttled_tries: dict[str, int] = {}
        self.streak = FailureStreak(dl.failure_streak_limit)
        self.halt: str | None = None  # why the environment stopped the stage
        self.stopped_by: str | None = None  # "throttled" | "environment" once stopped
        self.leave_pending: set[str] = set()  # failed clips put back to pending at the end
        self.finished = finished_files(raw_dir)  # read-only from here on
        # the cut will list the clip's packets (native frames): the probe here does instead
        self.list_packets = frames_recipe(config.cut.frames_recipe).rate is None

    # -- worker threads -------------------------------------------------------
    def _worker(self) -> None:
        fetchers: dict[str, Fetcher] = {}  # identity name -> its own YoutubeDL, made on first use
        ledger = Ledger(self.ledger_path)  # SQLite connections are per thread

        def fetcher_for(lease: Lease) -> Fetcher:
            name = lease.identity.name
            if name not in fetchers:
                options = build_options(with_identity(self.dl, lease.identity), self.staging,
                                        self.bytes.hook)
                fetchers[name] = Fetcher(self.wd, self.raw_dir, self.staging, options,
                                         self.finished, local_files=self.dl.local_files,
                                         list_packets=self.list_packets)
            return fetchers[name]

        try:
            while True:
                clip_id = self.jobs_q.get()
                if clip_id is None:
                    return
                self.results.put(self._one(clip_id, fetcher_for, ledger))
        finally:
            for fetcher in fetchers.values():
                fetcher.close()
            ledger.close()

    def _one(self, clip_id: str, fetcher_for: Callable[[Lease], Fetcher],
             ledger: Ledger) -> Outcome:
        job = self.jobs[clip_id]
        try:
            first = self.pool.identities[0]
            adopted = fetcher_for(Lease(first, 0)).adopt(job)  # no request: any identity
            if adopted is not None:
                return adopted
            if job.kind == "url":
                lease = self.pool.lease(self.stop)
                if lease is None:
                    return Outcome(clip_id, cancelled=True)
            else:  # a local file or a bad source: no host to throttle us
                lease = Lease(first, 0)
            ledger.start(clip_id)
            outcome = fetcher_for(lease).fetch(job)
            if job.kind != "url":
                return outcome
            outcome.identity = lease.identity.name
            # tell the pool before taking the next clip, so that no worker slips another
            # request past a pause the host just asked for
            if outcome.failure is None:
                self.pool.succeeded(lease)
            elif outcome.failure.kind == THROTTLED:
                outcome.pause_s = self.pool.throttled(lease, outcome.failure.reason,
                                                      outcome.failure.retry_after_s)
            return outcome
        except Exception as exc:  # a bug or a full disk: record it, keep the others going
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
                retry_in = self._record(outcome, bar)
                if retry_in is not None:
                    seq += 1
                    heapq.heappush(delayed, (time.monotonic() + retry_in, seq, outcome.clip_id))
                if self.pool.all_tripped() or self.halt is not None:
                    self.stop.set()
            self._drain(in_flight, bar, threads)
        finally:
            self.stop.set()
            for _ in threads:
                self.jobs_q.put(None)
            bar.close()
            if self.leave_pending:  # the environment's doing: the clips are fine as they are
                self.stats.left_pending = self.ledger.requeue_clips(sorted(self.leave_pending))
        if self.halt is not None:
            self.stopped_by = "environment"
            raise StageStopped(self.halt, EXIT_ENVIRONMENT)
        if self.pool.all_tripped():
            self.stopped_by = "throttled"
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
        if outcome.cancelled:
            return None
        if outcome.failure is None:
            info = outcome.info
            if self.record_identity:
                info = record_attempt(self.ledger.get(clip_id), outcome.identity, info)
            self.ledger.done(clip_id, checksum=outcome.checksum, info=info)
            self.streak.succeeded()
            stats.done += 1
            stats.count(outcome.identity, "done")
            stats.adopted += int(outcome.adopted)
            self._postfix(bar)
            bar.update(1)
            return None
        f = outcome.failure
        info = None
        if self.record_identity:
            info = record_attempt(self.ledger.get(clip_id), outcome.identity, None,
                                  throttled=f.kind == THROTTLED)
        self.ledger.failed(clip_id, f.reason, permanent=f.permanent, detail=f.detail, info=info)
        if self._streak_stops(clip_id, f):
            self.leave_pending.add(clip_id)
            self._postfix(bar)
            return None
        if f.kind == THROTTLED:
            stats.throttled += 1
            self.throttled_tries[clip_id] = self.throttled_tries.get(clip_id, 0) + 1
            stats.count(outcome.identity, "throttled")
            if len(self.pool.identities) == 1 or not outcome.identity:
                log.warning("throttled (%s); all workers pause %.1f s", f.reason, outcome.pause_s)
            elif self.pool.gate(outcome.identity).tripped.is_set():
                log.warning("identity %s throttled (%s) %d times in a row: no more clips for it"
                            " in this run; %s", outcome.identity, f.reason,
                            self.dl.throttle_limit, self._identities_left())
            else:
                log.warning("identity %s throttled (%s); it pauses %.1f s, the others go on",
                            outcome.identity, f.reason, outcome.pause_s)
            self._postfix(bar)
            return 0.0 if retry and not self.pool.all_tripped() else None
        entry = self.ledger.get(clip_id)
        tries = (entry.attempts if entry else 1) - self.throttled_tries.get(clip_id, 0)
        if f.kind == TRANSIENT and retry and tries < self.dl.max_attempts:
            stats.retries += 1
            delay = backoff_delay(tries, self.dl.backoff_base_s, self.dl.backoff_max_s, self.rng)
            log.info("clip %s: %s (attempt %d), retry in %.1f s", clip_id, f.reason, tries, delay)
            return delay
        stats.failed += 1
        stats.count(outcome.identity, "failed")
        stats.reasons[f.reason] = stats.reasons.get(f.reason, 0) + 1
        log.info("clip %s failed: %s%s", clip_id, f.reason, "" if f.kind != PERMANENT else
                 " (permanent)")
        self._postfix(bar)
        bar.update(1)
        return None

    def _streak_stops(self, clip_id: str, f: Failure) -> bool:
        """Count `f` in the failure streak (ENVIRONMENT stops at once). True when this clip
        is to stay pending because the stage stops for it (or already stopped for its
        reason); the first time, say why."""
        if f.kind == ENVIRONMENT:
            if self.halt is None:
                self.halt = self._environment_message(clip_id, f)
            return True
        if f.kind == THROTTLED or self.jobs[clip_id].kind != "url":
            return False  # a local file's reason is the file's: missing ones may be many
        if self.halt is not None:  # finishing clips after a stop: keep the streak's reason
            return self.streak.reason == f.reason and self.streak.failed(clip_id, f.reason)
        if not self.streak.failed(clip_id, f.reason):
            return False
        self.leave_pending.update(self.streak.clip_ids)
        self.halt = self._streak_message()
        return True

    def _environment_message(self, clip_id: str, f: Failure) -> str:
        done = self.ledger.counts()["done"]
        error = f.detail.split(WARNED)[0].strip()[:200]
        advice = REASONS[f.reason].advice if f.reason in REASONS else "see the ledger's detail"
        return (f"this machine cannot download ({f.reason}): {advice}. Clip {clip_id} got"
                f" \"{error}\" after yt-dlp's warnings (in the ledger's detail). {done} clips"
                f" done are kept; the clips tried are left pending, not failed. `avel doctor`"
                f" shows the JavaScript runtime and challenge solver found; after fixing,"
                f" rerun the same `avel download` command.")

    def _streak_message(self) -> str:
        done = self.ledger.counts()["done"]
        return (f"{self.streak.attempts} download attempts in a row failed with the same"
                f" reason '{self.streak.reason}' and none succeeded in between"
                f" (download.failure_streak_limit = {self.dl.failure_streak_limit}): that is"
                f" probably this machine or its network (yt-dlp too old, no JS runtime, cookies"
                f" expired, a proxy down), not the clips. Stopped with {done} clips done and kept;"
                f" those {len(self.streak.clip_ids)} clips are left pending. Try one by hand"
                f" (yt-dlp -v URL) and see the ledger's detail; after fixing, rerun the same"
                f" `avel download` command. If these clips really are all gone, raise"
                f" download.failure_streak_limit (0 = off).")

    def _postfix(self, bar: tqdm) -> None:
        elapsed = max(1e-6, time.monotonic() - self.stats.started)
        bar.set_postfix(done=self.stats.done, failed=self.stats.failed,
                        throttled=self.stats.throttled,
                        MBps=f"{self.bytes.total / elapsed / 1e6:.2f}", refresh=False)

    def _identities_left(self) -> str:
        tripped = set(self.pool.tripped())
        left = [i.name for i in self.pool.identities if i.name not in tripped]
        return f"going on with {', '.join(left)}" if left else "none left"

    def _throttle_message(self) -> str:
        counts = self.ledger.counts()
        gates = [(i.name, self.pool.gate(i.name)) for i in self.pool.identities]
        if len(gates) == 1:
            gate = gates[0][1]
            what = (f"the host throttled us ({gate.last_reason}) {gate.in_a_row} times in a"
                    f" row")
        else:
            what = ("the host throttled every identity ("
                    + ", ".join(f"{name}: {g.last_reason} {g.in_a_row} times in a row"
                                for name, g in gates) + ")")
        return (f"{what} (download.throttle_limit = {self.dl.throttle_limit}); stopped cleanly with"
                f" {counts['done']} clips done and kept. To go on: give a cookies file of a"
                f" logged-in browser session (download.cookies_file), slow down"
                f" (lower download.requests_per_s, raise download.sleep_s, fewer --workers) or"
                f" use another network (download.proxy; several at once: download.identities),"
                f" wait a while, then rerun the same `avel download` command; it resumes where"
                f" it stopped.")


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
            **({"identities": stats.identities} if config.download.identities else {}),
        },
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
