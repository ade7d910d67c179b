"""`avel download`: fetch the shard's clips with yt-dlp (or link local videos)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.options import config_and_shard, shard_options
from pipeline.core.workdir import Workdir
from pipeline.download.stage import run_download, summary_path


@click.command("download")
@shard_options
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Parallel downloads (default: download.workers).")
@click.option("--retry-failed", "retry_failed", is_flag=False, flag_value="all", default=None,
              metavar="[REASON]",
              help="Re-queue failed clips first: all of them, or only those failed for REASON "
                   "(a key as shown by `avel status`, e.g. http-5xx, unavailable).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(workdir: Path, shard_index: int | None, num_shards: int | None,
            workers: int | None, retry_failed: str | None, no_progress: bool) -> None:
    """Download every pending clip of the shard into raw/<shard>/ (resumable).

    Exit codes: 0 done (some clips may have failed, see `avel status`), 2 bad input,
    3 stopped because the host kept throttling, 6 stopped because this machine cannot
    download (no JavaScript runtime for YouTube, or one reason failing every attempt in a
    row; those clips stay pending). Everything done so far is kept.
    """
    config, shard = config_and_shard(workdir, shard_index, num_shards)
    summary = run_download(workdir, config, shard, workers=workers, retry_failed=retry_failed,
                           progress=not no_progress)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary["failed_by_reason"].items()))
    click.echo(f"{shard.name}: {summary['done']} done, {summary['failed']} failed"
               f"{' (' + reasons + ')' if reasons else ''}, {summary['pending']} pending;"
               f" summary {summary_path(Workdir(workdir), shard)}")
