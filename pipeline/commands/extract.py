"""`avel extract` (features of one shard's cut clips) and `avel index` (rebuild index.h5)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.commands.options import config_and_shard, shard_options, workdir_option


@click.command("extract")
@shard_options
@click.option("--extractor", "-e", "extractors", multiple=True,
              help="Extractor name (vgg19, resnet152, r2plus1d_18, resnet_layer3, vggish); "
                   "repeatable; default: extract.extractors from the config.")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default=None,
              help="Where the network runs (default: extract.device).")
@click.option("--precision", type=click.Choice(["fp32", "tf32", "bf16", "fp16"]), default=None,
              help="fp32 is strict (no TF32); bf16/fp16 use autocast.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Items (frames, or video clips for r2plus1d_18) per forward pass.")
@click.option("--num-workers", type=click.IntRange(min=0), default=None,
              help="Preprocessing worker processes (0 = in the main process).")
@click.option("--weights", default=None,
              help="pretrained (from the cache), random (seeded, recorded), or a state_dict file.")
@click.option("--store-dtype", type=click.Choice(["float32", "float16"]), default=None)
@click.option("--decode", type=click.Choice(["auto", "cpu", "device"]), default=None,
              help="Where frame JPEGs are decoded: cpu (PIL in the workers, the exact reference) or "
                   "device (batched on the device); default: extract.decode (auto = device on CUDA).")
@click.option("--decode-threads", type=click.IntRange(min=0), default=None,
              help="With device decode: threads decoding several clips per call ahead of the network "
                   "(0 = clip by clip in the main thread); default: extract.decode_threads (2).")
@click.option("--retry-failed", "retry_failed", is_flag=False, flag_value="all", default=None,
              metavar="[REASON]",
              help="Extract failed clips again: all of them, or only those failed for REASON "
                   "(a key as shown by `avel status`, e.g. preprocess_error), after a fix.")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
@click.option("--verify", is_flag=True,
              help="Also check every stored row against its ledger checksum (reads the shard).")
def extract_command(workdir: Path, shard_index: int | None, num_shards: int | None,
                    extractors: tuple[str, ...], device: str | None, precision: str | None,
                    batch_size: int | None, num_workers: int | None, weights: str | None,
                    store_dtype: str | None, decode: str | None, decode_threads: int | None,
                    retry_failed: str | None, no_progress: bool, verify: bool) -> None:
    """Run extractors over this shard's cut clips in one pass (each clip read once);
    resumable per clip and extractor; prints one JSON summary per extractor.

    Exit codes: 0 every cut clip extracted, 1 some clips failed, 2 bad input, 4 clips still
    pending."""
    from pipeline.core.outcome import exit_code_for, ledger_counts
    from pipeline.core.workdir import Workdir, ledger_stage
    from pipeline.extract.stage import run_extract_many
    config, shard = config_and_shard(workdir, shard_index, num_shards)
    names = list(dict.fromkeys(extractors or config.extract.extractors))
    summaries = run_extract_many(workdir, names, shard, config, weights=weights, progress=not no_progress,
                                 device=device, precision=precision, batch_size=batch_size,
                                 num_workers=num_workers, store_dtype=store_dtype, decode=decode,
                                 decode_threads=decode_threads, verify=verify,
                                 retry_failed=retry_failed)
    for summary in summaries:
        click.echo(json.dumps(summary, sort_keys=True))
    wd = Workdir(workdir)
    raise SystemExit(exit_code_for(ledger_counts(
        wd.ledger(ledger_stage("extract", name), shard) for name in names)))


@click.command("index")
@workdir_option
@click.option("--extractor", "-e", "extractors", multiple=True,
              help="Extractor whose index to rebuild; default: every one under features/.")
def index_command(workdir: Path, extractors: tuple[str, ...]) -> None:
    """Fold leftover parts into shard files and rebuild features/<name>/index.h5."""
    from pipeline.store.index import rebuild_index
    names = extractors or tuple(sorted(p.name for p in (workdir / "features").glob("*") if p.is_dir()))
    for name in names:
        click.echo(str(rebuild_index(workdir, name)))


