"""One shard's manifest rows, read batch by batch: the same rows as filtering the whole table,
the same checks, a progress line, and peak memory that does not grow with the rows of other
shards (a 10^7-row manifest used to grow `avel cut` to 9.7 GB before it said anything)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.errors import InputError
from pipeline.core.sharding import Shard
from pipeline.datasets import manifest_scan
from pipeline.datasets.manifest import MEDIA_COLUMNS
from pipeline.datasets.manifest_scan import read_shard_rows, shard_sizes
from tests.conftest import REPO_ROOT, cli_env


def _write(w: Path, rows: int, *, row_group: int = 50_000) -> None:
    w.mkdir(parents=True, exist_ok=True)
    ids = [f"v{i:09d}_000030" for i in range(rows)]
    table = pa.table({"clip_id": ids, "video_id": [c[:10] for c in ids],
                      "source": [f"https://example.org/{c[:10]}" for c in ids],
                      "start_s": [float(i % 50) for i in range(rows)],
                      "end_s": [float(i % 50) + 10.0 for i in range(rows)],
                      "labels": [["dog", "cat"]] * rows, "split": ["train"] * rows})
    pq.write_table(table, w / "manifest.parquet", row_group_size=row_group)


def test_shard_rows_equal_a_plain_filter_of_the_whole_table(tmp_path, monkeypatch):
    """Reference: the whole table read with pandas, filtered by `Shard.owns` (sha256 of the
    id, modulo the count), in file order. Small batches so the rows span many of them."""
    monkeypatch.setattr(manifest_scan, "BATCH_ROWS", 97)
    _write(tmp_path, 3000, row_group=1000)
    whole = pd.read_parquet(tmp_path / "manifest.parquet")
    for shard in (Shard(0, 1), Shard(2, 7), Shard(6, 7)):
        got = read_shard_rows(tmp_path, shard, MEDIA_COLUMNS)
        want = whole[[shard.owns(c) for c in whole["clip_id"]]][list(MEDIA_COLUMNS)]
        assert list(got.columns) == list(MEDIA_COLUMNS)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    assert shard_sizes(tmp_path, [Shard(i, 7) for i in range(7)]) == {
        Shard(i, 7): sum(Shard(i, 7).owns(c) for c in whole["clip_id"]) for i in range(7)}
    assert sum(shard_sizes(tmp_path, [Shard(i, 7) for i in range(7)]).values()) == 3000


def test_a_duplicate_id_is_refused_by_the_shard_that_holds_it(tmp_path, monkeypatch):
    """Equal ids hash to the same shard: that shard refuses, naming the id, even when the two
    rows are in different batches; another shard has nothing to run twice."""
    monkeypatch.setattr(manifest_scan, "BATCH_ROWS", 10)
    _write(tmp_path, 100)
    table = pd.read_parquet(tmp_path / "manifest.parquet")
    table.loc[95, "clip_id"] = table.loc[3, "clip_id"]
    table.to_parquet(tmp_path / "manifest.parquet", index=False)
    dup = str(table.loc[3, "clip_id"])
    holder = next(Shard(i, 4) for i in range(4) if Shard(i, 4).owns(dup))
    with pytest.raises(InputError, match=f"clip id '{dup}' appears twice") as err:
        read_shard_rows(tmp_path, holder, MEDIA_COLUMNS)
    assert err.value.field == "clip_id"
    other = Shard((holder.index + 1) % 4, 4)
    assert dup not in set(read_shard_rows(tmp_path, other)["clip_id"])


@pytest.mark.parametrize("spoil, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:300]), "not a readable parquet manifest"),
    (lambda p: pd.DataFrame({"clip_id": ["a"]}).to_parquet(p), "no column 'source'"),
    (lambda p: pd.DataFrame({"clip_id": [1], "source": "x", "start_s": 0.0, "end_s": 1.0})
     .to_parquet(p), "column 'clip_id' holds int64"),
    (lambda p: pd.DataFrame({"clip_id": ["a", None], "source": "x", "start_s": 0.0,
                             "end_s": 1.0}).to_parquet(p), "a row has no clip_id"),
])
def test_a_spoiled_manifest_is_bad_input_naming_the_file(tmp_path, spoil, message):
    _write(tmp_path, 50)
    spoil(tmp_path / "manifest.parquet")
    with pytest.raises(InputError, match=message) as err:
        read_shard_rows(tmp_path, Shard(0, 2), MEDIA_COLUMNS)
    assert str(err.value.file) == str(tmp_path / "manifest.parquet")


def test_a_long_scan_logs_its_progress(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(manifest_scan, "BATCH_ROWS", 100)
    monkeypatch.setattr(manifest_scan, "PROGRESS_EVERY_S", 0.0)
    _write(tmp_path, 400)
    with caplog.at_level(logging.INFO, logger=manifest_scan.__name__):
        read_shard_rows(tmp_path, Shard(0, 3))
    lines = [r.getMessage() for r in caplog.records]
    assert "reading manifest.parquet: 100 of 400 rows (25%)" in lines
    assert "reading manifest.parquet: 400 of 400 rows (100%)" in lines


# Peak RSS of a fresh process reading one shard's rows, over its RSS just before: the peak
# (VmHWM) is reset after the imports by writing 5 to /proc/self/clear_refs (Linux >= 4.0).
_PROBE = textwrap.dedent("""
    import json, sys
    from pipeline.core.sharding import Shard
    from pipeline.datasets.manifest import MEDIA_COLUMNS, load_manifest, shard_rows
    from pipeline.datasets.manifest_scan import read_shard_rows

    def status_kb(key):
        with open("/proc/self/status") as fh:
            return next(int(ln.split()[1]) for ln in fh if ln.startswith(key + ":"))

    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = status_kb("VmRSS")
    assert status_kb("VmHWM") <= before + 1024, "peak was not reset"
    if sys.argv[2] == "scan":
        rows = read_shard_rows(sys.argv[1], Shard(0, 1000), MEDIA_COLUMNS)
    else:  # what the stages did before: the whole table, then the filter
        rows = shard_rows(load_manifest(sys.argv[1], MEDIA_COLUMNS), Shard(0, 1000))
    print(json.dumps({"rows": len(rows), "grew_mb": (status_kb("VmHWM") - before) / 1024}))
""")


def _grew_mb(w: Path, how: str) -> tuple[int, float]:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(w), how], env=cli_env(),
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout)
    return result["rows"], result["grew_mb"]


def test_peak_memory_does_not_grow_with_the_rows_of_other_shards(tmp_path):
    """200k and 800k rows in row groups of 50k, shard 0 of 1000 (~200 and ~800 rows): the
    scan's peak is the same either way (measured +60 MB over the imports at both sizes: one
    row group's decode and one batch of Python strings), while loading the whole table grows
    with the file (measured +158 MB and +427 MB). The bound leaves room for allocator noise,
    not for a whole-table read."""
    small, large = tmp_path / "small", tmp_path / "large"
    _write(small, 200_000)
    _write(large, 800_000)
    rows_small, scan_small = _grew_mb(small, "scan")
    rows_large, scan_large = _grew_mb(large, "scan")
    _, whole_small = _grew_mb(small, "whole")
    _, whole_large = _grew_mb(large, "whole")
    assert scan_large - scan_small < 20, (scan_small, scan_large)
    assert 150 < rows_small < 260 and 700 < rows_large < 900
    assert whole_large - whole_small > 150, (whole_small, whole_large)  # the probe can tell
