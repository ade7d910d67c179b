"""Selecting one shard's rows from a large manifest: `avel cut` and `avel download` on a
synthetic manifest of N rows (VGGSound-like columns, labels as lists), each run in a fresh
process under `/usr/bin/time -v` so its peak RSS is its own. Nothing is downloaded or cut
(the cut finds no download): the time and memory measured are the
manifest scan, the ledger of one shard and the per-clip bookkeeping. Download:
every source is `not-a-source`, refused as `bad-source` without a request.

    python -m bench.bench_manifest_scan [--rows 1000000] [--shards 1000]

At 10^7 rows the manifest is ~300 MB of parquet; mind the disk and the shared CPUs.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_manifest(path: Path, rows: int, chunk: int = 1_000_000) -> None:
    """N rows in row groups of `chunk`, written chunk by chunk (the writer's memory stays flat)."""
    schema = pa.schema([("clip_id", pa.string()), ("video_id", pa.string()),
                        ("source", pa.string()), ("start_s", pa.float64()),
                        ("end_s", pa.float64()), ("labels", pa.list_(pa.string())),
                        ("split", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for first in range(0, rows, chunk):
            ids = [f"v{i:011d}_000030" for i in range(first, min(rows, first + chunk))]
            n = len(ids)
            writer.write_table(pa.table({
                "clip_id": ids, "video_id": [c[:12] for c in ids],
                "source": ["not-a-source"] * n,
                "start_s": [30.0] * n, "end_s": [40.0] * n,
                "labels": [["dog barking", "people talking"]] * n, "split": ["train"] * n},
                schema=schema))


def measure(args: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MB, exit code, last stderr line) of one `avel` command."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    start = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "pipeline", *args],
                          cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("\t")]
    return seconds, int(rss.group(1)) / 1024 if rss else float("nan"), proc.returncode, \
        (lines[-1] if lines else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--stages", default="cut,download")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="avel-manifest-scan-") as tmp:
        w = Path(tmp) / "w"
        w.mkdir()
        (w / "avel.yaml").write_text(yaml.safe_dump({
            "dataset": {"name": "vggsound", "source": "url",
                        "url_template": "http://127.0.0.1:9/{video_id}.mp4"},
            "sharding": {"num_shards": args.shards},
            "download": {"workers": 1, "max_attempts": 1, "socket_timeout_s": 0.2,
                         "requests_per_s": 0.0},
            "cut": {"workers": 1}}))
        start = time.monotonic()
        write_manifest(w / "manifest.parquet", args.rows)
        print(f"manifest: {args.rows:,} rows, {(w / 'manifest.parquet').stat().st_size / 1e6:.0f} MB "
              f"written in {time.monotonic() - start:.1f} s; {args.shards} shards")
        for stage in args.stages.split(","):
            seconds, rss, code, last = measure([stage, "-w", str(w), "--shard-index", "0"], w)
            print(f"avel {stage}: {seconds:.1f} s, peak RSS {rss:.0f} MB, exit {code}: {last[:160]}",
                  flush=True)


if __name__ == "__main__":
    main()
