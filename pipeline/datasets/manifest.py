"""The manifest stage: the dataset's list files → `manifest.parquet`, one row per clip.

Columns: clip_id, video_id, source, start_s, end_s, labels, split, then the dataset's
own (AVE: category, event_start, event_end, row; LLP: audio_events, visual_events;
VGGSound-AVEL: category, class_id). Every value that later becomes a path is checked
here, so a manifest row can never make a stage write outside the work directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipeline.core import atomic
from pipeline.core.config import Config, portable, resolve
from pipeline.core.errors import InputError, first_line
from pipeline.core.sharding import Shard, shard_of
from pipeline.core.workdir import Workdir, check_clip_id
from pipeline.datasets.local_videos import LocalVideos
from pipeline.datasets.readers import ave, llp, vggsound, vggsound_avel

log = logging.getLogger(__name__)

READERS: dict[str, Callable[[dict[str, Path]], pd.DataFrame]] = {
    "ave": ave.read,
    "llp": llp.read,
    "vggsound": vggsound.read,
    "vggsound-avel": vggsound_avel.read,
    "vggsound-avel50k": vggsound_avel.read,
}
COMMON = ["clip_id", "video_id", "source", "start_s", "end_s", "labels", "split"]


def read_dataset(config: Config, workdir: str | Path) -> pd.DataFrame:
    files = {role: resolve(workdir, p) for role, p in config.dataset.files.items()}
    table = READERS[config.dataset.name](files)
    validate(table)
    local = LocalVideos(config, workdir) if config.dataset.source == "local" else None
    table["source"] = [portable(workdir, local.path(v)) if local else source_for(config, workdir, v)
                       for v in table["video_id"]]
    if config.dataset.limit is not None:
        table = table.head(config.dataset.limit)
    extra = [c for c in table.columns if c not in COMMON and c not in ("line", "file")]
    return table[COMMON + extra].reset_index(drop=True)


def validate(table: pd.DataFrame) -> None:
    """Checks every reader's output gets: usable and unique ids, a real time span."""
    seen: dict[str, int] = {}
    for row in table.itertuples(index=False):
        where = {"file": row.file, "line": row.line}
        for field in ("clip_id", "video_id"):
            problem = check_clip_id(getattr(row, field))
            if problem:
                raise InputError(f"{problem}: {getattr(row, field)!r}", field=field, **where)
        if row.clip_id in seen:
            raise InputError(f"duplicate clip id {row.clip_id!r} (first on line {seen[row.clip_id]})",
                             field="clip_id", **where)
        seen[row.clip_id] = row.line
        if not row.end_s > row.start_s:
            raise InputError(f"end {row.end_s} is not after start {row.start_s}", field="end",
                             **where)


def source_for(config: Config, workdir: str | Path, video_id: str) -> str:
    ds = config.dataset
    if ds.source == "local":
        return portable(workdir,
                        resolve(workdir, ds.videos_dir or ".") / f"{video_id}{ds.video_ext}")
    return ds.url_template.format(video_id=video_id)


def build_manifest(workdir: str | Path, config: Config) -> pd.DataFrame:
    """Read, validate and write the manifest atomically; nothing is written on error."""
    table = read_dataset(config, workdir)
    target = Workdir(workdir).manifest
    atomic.remove_orphaned_temps(target.parent, target.name)  # of a killed `avel manifest`
    with atomic.atomic_path(target) as temp:
        # row groups of 64k rows: a stage reading its shard decodes one group at a time
        # (manifest_scan), so this bounds its memory whatever the manifest's length
        table.to_parquet(temp, index=False, row_group_size=65_536)
    log.info("wrote %s (%d clips)", target, len(table))
    return table


# what the stages that fetch and cut media read from each row (every reader needs clip_id)
MEDIA_COLUMNS = ("clip_id", "source", "start_s", "end_s")


def load_manifest(workdir: str | Path, required: tuple[str, ...] = ("clip_id",)) -> pd.DataFrame:
    """The manifest, checked: readable parquet, the `required` columns, unique clip ids."""
    path = Workdir(workdir).manifest
    if not path.is_file():
        raise InputError("no manifest; run `avel manifest` first", file=path)
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise InputError(f"not a readable parquet manifest ({first_line(exc, 200)}); rerun "
                         "`avel manifest`",
                         file=path) from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(f"not an avel manifest: no column {missing[0]!r}; rerun `avel manifest`",
                         file=path, field=missing[0])
    if table["clip_id"].duplicated().any():
        dup = table["clip_id"][table["clip_id"].duplicated()].iloc[0]
        raise InputError(f"clip id {dup!r} appears twice; rerun `avel manifest`", file=path,
                         field="clip_id")
    return table


def shard_rows(table: pd.DataFrame, shard: Shard) -> pd.DataFrame:
    """The rows of an already loaded manifest that belong to `shard`, in manifest order.
    The stages read their shard with `manifest_scan.read_shard_rows`, which never loads the
    whole file."""
    mask = [shard_of(c, shard.count) == shard.index for c in table["clip_id"]]
    return table[mask]
