"""The stages `avel run` knows, and how one of them runs on one shard.

Per-shard stages (download, cut, extract) are what executors spread over processes,
Ray workers or array-job tasks; the global ones (index, export, train) join the shards and
run once, after every shard is through.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pipeline.core.config import Config
from pipeline.core.sharding import Shard
from pipeline.core.workdir import Workdir, ledger_stage
from pipeline.cut.stage import run_cut
from pipeline.download.stage import run_download
from pipeline.extract.stage import run_extract, run_extract_many
from pipeline.run.stage_names import ALL_STAGES as ALL_STAGES  # their home before stage_names
from pipeline.run.stage_names import DEFAULT_STAGES as DEFAULT_STAGES
from pipeline.run.stage_names import GLOBAL_STAGES as GLOBAL_STAGES
from pipeline.run.stage_names import SHARD_STAGES as SHARD_STAGES
from pipeline.run.stage_names import parse_stages as parse_stages
from pipeline.store import clips as clip_store


def shard_tasks(stage: str, config: Config) -> list[tuple[str, str | None]]:
    """(stage, extractor) pairs a per-shard stage expands to."""
    if stage == "extract":
        return [("extract", name) for name in config.extract.extractors]
    return [(stage, None)]


def ledger_keys(stages: list[str], config: Config) -> list[str]:
    """The ledger of each per-shard task these stages expand to (`extract-<name>` for each
    extractor), in pipeline order."""
    return [ledger_stage(name, extractor) for stage in stages
            for name, extractor in shard_tasks(stage, config)]


#: joins extractor names into one task: `avel run` extracts them in one pass over a shard
PASS_SEPARATOR = "+"


def one_pass_task(config: Config) -> str:
    """The extract task of `avel run`: every configured extractor in one pass per shard
    (each clip read and decoded once; each extractor keeps its own ledger and store)."""
    return PASS_SEPARATOR.join(config.extract.extractors)


def run_on_shard(workdir: str | Path, config: Config, stage: str, shard: Shard,
                 extractor: str | None = None, extractor_obj: Any = None) -> dict[str, Any]:
    """Run one per-shard stage on one shard; returns the stage's summary as plain data."""
    if stage == "download":
        return run_download(workdir, config, shard, progress=False)
    if stage == "cut":
        return _plain(run_cut(workdir, config, shard, progress=False))
    if stage == "extract":
        names = (extractor or "").split(PASS_SEPARATOR)
        clips_file = Workdir(workdir).clips_file(shard)
        if not clips_file.is_file() and not clip_store.parts_dir(clips_file).is_dir():
            # an empty shard, or one whose every clip failed to cut: nothing to extract
            empty = [{"extractor": n, "shard": shard.name, "todo": 0, "done": 0,
                      "note": "no cut clips in this shard"} for n in names]
            return empty[0] if len(names) == 1 else {"extractors": empty}
        if len(names) > 1:  # extractor_obj: {name: built extractor} (a Ray actor's)
            return {"extractors": run_extract_many(workdir, names, shard, config, progress=False,
                                                   extractors=extractor_obj)}
        return run_extract(workdir, extractor, shard, config, progress=False, extractor=extractor_obj)
    raise ValueError(f"{stage!r} is not a per-shard stage")


def _plain(summary: Any) -> dict[str, Any]:
    return dataclasses.asdict(summary) if dataclasses.is_dataclass(summary) else dict(summary)
