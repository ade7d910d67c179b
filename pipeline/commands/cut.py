"""`avel cut`: 16 kHz audio and recipe frames for one shard, into clips/<shard>.h5."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.options import config_and_shard, shard_options


@click.command("cut")
@shard_options
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: cut.workers from the config).")
@click.option("--loose/--no-loose", default=None,
              help="Write frames/<clip_id>/%06d.jpg and audio/<clip_id>.wav under clips/loose "
                   "(the original scripts' layout) instead of the shard HDF5 file.")
@click.option("--retry-failed", "retry_failed", is_flag=False, flag_value="all", default=None,
              metavar="[REASON]",
              help="Cut failed clips again: all of them, or only those failed for REASON "
                   "(e.g. after adding it to cut.allow).")
def command(workdir: Path, shard_index: int | None, num_shards: int | None,
            workers: int | None, loose: bool | None, retry_failed: str | None) -> None:
    """Cut each clip's audio (16 kHz PCM) and frames (JPEG, per the frames recipe).

    Exit codes: 0 every clip cut, 1 some clips failed, 2 bad input, 4 clips still pending
    (e.g. waiting for their download)."""
    from pipeline.core.outcome import exit_code_for, ledger_counts
    from pipeline.core.workdir import Workdir
    from pipeline.cut.stage import LOOSE_STAGE, STAGE, run_cut
    config, shard = config_and_shard(workdir, shard_index, num_shards)
    s = run_cut(workdir, config, shard, workers=workers, loose=loose, retry_failed=retry_failed)
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted(s.reasons.items())) or "-"
    click.echo(f"shard {s.shard}: {s.done} cut, {s.failed} failed ({reasons}), "
               f"{s.skipped} already done, {s.waiting} waiting for download -> {s.output}"
               + (f" ({s.requeued} marked done but missing from the file: cut again)"
                  if s.requeued else ""))
    stage = LOOSE_STAGE if (config.cut.loose if loose is None else loose) else STAGE
    raise SystemExit(exit_code_for(ledger_counts([Workdir(workdir).ledger(stage, shard)])))
