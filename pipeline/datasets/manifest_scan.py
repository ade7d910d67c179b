"""One shard's rows of the manifest, read without holding the whole manifest in memory.

A per-clip stage (download, cut, extract) needs only its own shard's rows and only a few
columns. Reading `manifest.parquet` whole into pandas costs memory in proportion to every
row and column (a 10^7-row manifest grew `avel cut` to 9.7 GB); here the file is read in
record batches of the needed columns only, each batch is filtered by shard, and only the
kept rows stay. Peak memory is one batch plus this shard's rows. Duplicate clip ids are
checked within the shard, which is enough: equal ids hash to the same shard, so the shard
that would run a duplicate twice is the one that sees it. A log line reports progress
through a large file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.errors import InputError, first_line
from pipeline.core.sharding import Shard, shard_of
from pipeline.core.workdir import Workdir

log = logging.getLogger(__name__)

BATCH_ROWS = 65_536
PROGRESS_EVERY_S = 5.0  # a log line at most this often while scanning


def _open(path: Path, columns: tuple[str, ...]) -> pq.ParquetFile:
    if not path.is_file():
        raise InputError("no manifest; run `avel manifest` first", file=path)
    try:
        # pre_buffer would cache every column chunk read until the reader is closed (memory
        # growing with the file); a buffered stream holds one page at a time
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise _unreadable(path, exc) from None
    names = parquet.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputError(f"not an avel manifest: no column {missing[0]!r}; rerun `avel manifest`",
                         file=path, field=missing[0])
    clip_type = parquet.schema_arrow.field("clip_id").type
    if not (pa.types.is_string(clip_type) or pa.types.is_large_string(clip_type)):
        raise InputError(f"column 'clip_id' holds {clip_type}, not text; rerun `avel manifest`",
                         file=path, field="clip_id")
    return parquet


def _unreadable(path: Path, exc: BaseException) -> InputError:
    return InputError(f"not a readable parquet manifest ({first_line(exc, 200)}); rerun "
                      "`avel manifest`", file=path)


def _batches(path: Path, parquet: pq.ParquetFile, columns: list[str]
             ) -> Iterator[pa.RecordBatch]:
    """The file's record batches of `columns`, a log line every few seconds of a long scan."""
    total = parquet.metadata.num_rows
    seen, last_log = 0, time.monotonic()
    try:
        # one thread: decoding is not the cost (hashing the ids is), and each decoding
        # thread would keep its own allocator heap
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns,
                                          use_threads=False):
            seen += batch.num_rows
            now = time.monotonic()
            if now - last_log >= PROGRESS_EVERY_S:
                log.info("reading %s: %d of %d rows (%.0f%%)", path.name, seen, total,
                         100.0 * seen / max(total, 1))
                last_log = now
            yield batch
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None


def _clip_ids(batch: pa.RecordBatch, path: Path) -> list[str]:
    clip_ids = batch.column("clip_id").to_pylist()
    if any(c is None for c in clip_ids):
        raise InputError("a row has no clip_id; rerun `avel manifest`", file=path,
                         field="clip_id")
    return clip_ids


def read_shard_rows(workdir: str | Path, shard: Shard,
                    columns: tuple[str, ...] = ("clip_id",)) -> pd.DataFrame:
    """`shard`'s manifest rows (the `columns` given, clip_id always among them), in manifest
    order, read batch by batch; checked as `load_manifest` checks the whole table."""
    path = Workdir(workdir).manifest
    wanted = ["clip_id", *[c for c in columns if c != "clip_id"]]
    parquet = _open(path, tuple(wanted))
    kept: list[pa.Table] = []
    count = 0
    start = time.monotonic()
    for batch in _batches(path, parquet, wanted):
        mask = [shard_of(c, shard.count) == shard.index for c in _clip_ids(batch, path)]
        mine = batch.filter(pa.array(mask, type=pa.bool_()))
        if mine.num_rows:
            kept.append(pa.Table.from_batches([mine]))
            count += mine.num_rows
    if kept:
        table = pa.concat_tables(kept).to_pandas()
    else:
        table = parquet.schema_arrow.empty_table().select(wanted).to_pandas()
    log.debug("shard %s: %d of %d manifest rows (%.1f s)", shard.name, count,
              parquet.metadata.num_rows, time.monotonic() - start)
    duplicated = table["clip_id"].duplicated()
    if duplicated.any():
        dup = table["clip_id"][duplicated].iloc[0]
        raise InputError(f"clip id {dup!r} appears twice; rerun `avel manifest`", file=path,
                         field="clip_id")
    return table


def shard_sizes(workdir: str | Path, shards: list[Shard]) -> dict[Shard, int]:
    """How many manifest rows each of `shards` holds, from one pass over the clip ids."""
    path = Workdir(workdir).manifest
    parquet = _open(path, ("clip_id",))
    sizes = dict.fromkeys(shards, 0)
    counts = {s.count for s in shards}
    for batch in _batches(path, parquet, ["clip_id"]):
        clip_ids = _clip_ids(batch, path)
        for count in counts:
            for index in (shard_of(c, count) for c in clip_ids):
                shard = Shard(index, count)
                if shard in sizes:
                    sizes[shard] += 1
    return sizes
