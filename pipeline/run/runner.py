"""`avel run`: every requested stage in order, skipping what is done.

With an explicit shard (flag or array-job variable) it runs that shard only, as one task
of an array job; otherwise it runs all shards through the chosen executor. A failed clip
never stops the run; the exit code says what is left: 0 all done, 1 some clips failed,
4 clips still pending (3 is a throttled stop, 2 bad input, as everywhere in avel).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from extractors.base import Extractor
from pipeline.core import atomic
from pipeline.core.config import Config, load_config
from pipeline.core.errors import InputError
from pipeline.core.ledger import Ledger
from pipeline.core.outcome import EXIT_DONE, EXIT_FAILED, EXIT_PENDING, exit_code_for  # noqa: F401 (EXIT_*: importable here too)
from pipeline.core.shard_lock import shard_lock
from pipeline.core.sharding import Shard, resolve_shard
from pipeline.core.workdir import Workdir
from pipeline.datasets.manifest import build_manifest
from pipeline.datasets.manifest_scan import shard_sizes
from pipeline.doctor import report as doctor_report
from pipeline.doctor.checks import run_checks
from pipeline.doctor.scope import Scope
from pipeline.export.formats import export_for_run
from pipeline.extract.stage import build_extractor, settings_for
from pipeline.run import executor_local, executor_ray
from pipeline.run.stage_names import GLOBAL_STAGES, SHARD_STAGES
from pipeline.run.stages import ledger_keys, one_pass_task, shard_tasks
from pipeline.store.index import rebuild_index
from pipeline.train.stage import resolve_preset, train

log = logging.getLogger(__name__)

ARRAY_ENV = ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX")


def shards_to_run(config: Config, shard_index: int | None, num_shards: int | None,
                  env: dict[str, str] | None = None) -> list[Shard]:
    env = dict(os.environ) if env is None else env
    if shard_index is not None or any(env.get(k) for k in ARRAY_ENV):
        return [resolve_shard(shard_index, num_shards, config.sharding.num_shards, env)]
    count = num_shards or config.sharding.num_shards
    return [Shard(i, count) for i in range(count)]


def check_extractors(config: Config) -> dict[str, Extractor]:
    """Build every configured extractor once (random weights: seconds) before any stage
    starts, so an unknown name or recipe option stops the run at once, not after the stages
    before it ran for an hour."""
    return {name: build_extractor(name, settings_for(config, name), weights="random")
            for name in config.extract.extractors}


def check_environment(wd: Workdir, config: Config, stages: list[str],
                      built: dict[str, Extractor]) -> None:
    """`avel doctor`'s checks for these stages (weights looked for, not hashed); a blocker
    stops the run before it starts, with the doctor's message and exit code."""
    checks = run_checks(Scope(wd.root, config, stages, verify_weights=False), built)
    for check in checks:
        if check.status == "warn":
            log.warning("doctor: %s: %s", check.name, check.detail)
    if doctor_report.blockers(checks):
        error = InputError(doctor_report.blocker_message(checks))
        error.exit_code = doctor_report.exit_code(checks)  # 5 for an unwritable workdir, else 2
        raise error


def requeue_failed(wd: Workdir, config: Config, stages: list[str], shards: list[Shard],
                   reason: str) -> int:
    """`avel run --retry-failed [REASON]`: put the failed clips (all, or those failed for
    `reason`) of these stages and shards back to pending before any stage starts, as each
    stage's own `--retry-failed` does; here once, up front, so that no executor has to carry
    the flag to its workers. Under each shard's lock: a running stage is never changed under
    its feet (it fails at once, naming the holder)."""
    requeued = 0
    for key in ledger_keys([s for s in stages if s in SHARD_STAGES], config):
        for shard in shards:
            path = wd.ledger(key, shard)
            if not path.is_file():
                continue
            with shard_lock(wd.root, key, shard.name), Ledger(path) as ledger:
                n = ledger.requeue(None if reason == "all" else reason)
            if n:
                log.info("%s %s: re-queued %d failed clips (%s)", key, shard.name, n, reason)
            requeued += n
    return requeued


def run(workdir: str | Path, stages: list[str], *, executor: str | None = None,
        shard_index: int | None = None, num_shards: int | None = None,
        retry_failed: str | None = None) -> dict[str, Any]:
    """Run `stages` (pipeline order) and return {stages: {...}, counts, exit_code}.
    `retry_failed` ("all" or a reason key) re-queues failed clips first (`requeue_failed`)."""
    wd = Workdir(workdir)
    config = load_config(wd.root)
    built = check_extractors(config) if "extract" in stages else {}
    check_environment(wd, config, stages, built)
    if "train" in stages:  # an unknown task, model or override stops the run before download
        resolve_preset(config)
    if not wd.manifest.is_file():
        build_manifest(wd.root, config)
    shards = shards_to_run(config, shard_index, num_shards)
    if retry_failed:
        requeued = requeue_failed(wd, config, stages, shards, retry_failed)
        if not requeued:
            log.warning("--retry-failed %s: no failed clip to re-queue in %s", retry_failed,
                        ", ".join(s for s in stages if s in SHARD_STAGES))
    executor = executor or config.executor
    run_shards = executor_ray.run_shards if executor == "ray" else executor_local.run_shards
    report: dict[str, Any] = {"shards": [s.name for s in shards], "executor": executor, "stages": {}}
    for stage in [s for s in stages if s in SHARD_STAGES]:
        if stage == "extract" and len(config.extract.extractors) > 1:
            task = one_pass_task(config)
            log.info("extract %s in one pass on %d shard(s) with the %s executor",
                     task, len(shards), executor)
            for result in run_shards(wd.root, config, stage, shards, task):
                for summary in result["extractors"]:
                    report["stages"].setdefault(f"extract-{summary['extractor']}", []).append(summary)
            continue
        for name, extractor in shard_tasks(stage, config):
            key = f"{name}-{extractor}" if extractor else name
            log.info("%s on %d shard(s) with the %s executor", key, len(shards), executor)
            report["stages"][key] = run_shards(wd.root, config, name, shards, extractor)
    all_shards = [Shard(i, shards[0].count) for i in range(shards[0].count)]
    counts = pending_and_failed(wd, config, [s for s in stages if s in SHARD_STAGES], all_shards)
    report["counts"] = counts
    every_shard_done = all(c["pending"] == 0 for c in counts.values())
    global_stages = [s for s in stages if s in GLOBAL_STAGES]
    if global_stages and not every_shard_done:
        log.warning("skipping %s: some shards still have pending clips", ", ".join(global_stages))
    elif global_stages:
        report["stages"].update(run_global(wd, config, global_stages))
    report["exit_code"] = exit_code_for(counts.values())
    return report


def pending_and_failed(wd: Workdir, config: Config, stages: list[str],
                       shards: list[Shard]) -> dict[str, dict[str, int]]:
    sizes = shard_sizes(wd.root, shards)
    out: dict[str, dict[str, int]] = {}
    for key in ledger_keys(stages, config):
        total = {"done": 0, "failed": 0, "pending": 0}
        for shard in shards:
            path = wd.ledger(key, shard)
            if not path.is_file():
                total["pending"] += sizes[shard]  # a shard that never started
                continue
            with Ledger(path) as ledger:
                counts = ledger.counts()
            for k in total:
                total[k] += counts[k]
        out[key] = total
    return out


def run_global(wd: Workdir, config: Config, stages: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in config.extract.extractors:
        if wd.features_dir(name).is_dir():
            # every shard is through, so no index writer is running: clear killed ones' temps
            atomic.remove_stale_temps(wd.features_dir(name), "index.h5")
            rebuild_index(wd.root, name)
    if "export" in stages:
        out["export"] = export_for_run(wd.root, config)
    if "train" in stages:
        out["train"] = train(wd.root, config)
    return out
