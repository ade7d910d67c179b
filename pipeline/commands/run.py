"""`avel run`: the stages in order for this shard, or for all shards with an executor."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.commands.options import shard_options
from pipeline.run.stage_names import ALL_STAGES, parse_stages


@click.command("run")
@shard_options
@click.option("--stages", default=None,
              help=f"Comma-separated subset of {','.join(ALL_STAGES)} (default: download,cut,extract).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None,
              help="Where shards run (default: the config's `executor`).")
@click.option("--retry-failed", "retry_failed", is_flag=False, flag_value="all", default=None,
              metavar="[REASON]",
              help="First put failed clips of these stages back to pending: all, or only those "
                   "failed for REASON (as each stage's own --retry-failed).")
def command(workdir: Path, shard_index: int | None, num_shards: int | None, stages: str | None,
            executor: str | None, retry_failed: str | None) -> None:
    """Run the stages in order, skipping finished work; exit 0 done, 1 failures, 4 pending."""
    from pipeline.run.runner import run
    report = run(workdir, parse_stages(stages), executor=executor, shard_index=shard_index,
                 num_shards=num_shards, retry_failed=retry_failed)
    click.echo(json.dumps(report["counts"], indent=2))
    raise SystemExit(report["exit_code"])
