"""`avel index`: make `features/<name>/index.h5` match the shard files on disk again.

Used after shards were extracted on different machines (each rebuilds the index with the
shards it can see) or after a run was killed before it consolidated. Imports no torch, so
it is quick to run on a login node.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.store import features as store
from pipeline.core.errors import InputError
from pipeline.datasets.manifest import load_manifest
from pipeline.core.workdir import Workdir


def manifest_order(wd: Workdir) -> list[str] | None:
    return [str(c) for c in load_manifest(wd.root)["clip_id"]] if wd.manifest.is_file() else None


def rebuild_index(workdir: str | Path, name: str) -> Path:
    """Fold leftover parts of every shard into its shard file, then rebuild `index.h5`
    (rows in manifest order). Clips folded here are reconciled with the ledger by the next
    `avel extract`, which finds them stored."""
    wd = Workdir(workdir)
    features_dir = wd.features_dir(name)
    if not features_dir.is_dir():
        raise InputError(f"no features for extractor {name!r}", file=features_dir)
    order = manifest_order(wd)
    for parts in sorted(features_dir.glob("*.parts")):
        store.consolidate(features_dir / (parts.name.removesuffix(".parts") + ".h5"), order=order)
    return store.build_index(features_dir, order)
