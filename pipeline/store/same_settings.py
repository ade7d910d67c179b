"""A shard file (or, before consolidation, its first part) records in its attrs the settings
its rows were made with; a stage about to add rows made otherwise must refuse. One check for
the cut clip store and the feature store. It is the first read of a stored file in both
stages, so it opens the file through `open_checked`: a planted file whose datasets point
outside it is refused before any row is added to it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pipeline.core.safe_hdf5 import open_checked


def differing_settings(shard_file: Path, parts_dir: Path, expected: Mapping[str, object]
                       ) -> tuple[Path, dict[str, tuple[str, str]]] | None:
    """(file, {key: (stored, expected)}) for the first stored file whose attrs disagree with
    `expected` (in `expected`'s key order, compared as text); None when all agree or nothing
    is stored yet. Keys a file does not record are not compared."""
    paths = [shard_file] if shard_file.is_file() else []
    paths += sorted(parts_dir.glob("part-*.h5"))[:1]
    for path in paths:
        with open_checked(path, what="stored shard file") as fh:
            changed = {key: (str(fh.attrs[key]), str(value)) for key, value in expected.items()
                       if key in fh.attrs and str(fh.attrs[key]) != str(value)}
        if changed:
            return path, changed
    return None
