"""Overhead of `avel download` per clip against calling yt-dlp directly in a loop.

Both fetch the same N clips from the same loopback server through yt-dlp's generic
extractor, full mode, one at a time: the baseline is one `YoutubeDL` and a bare
`extract_info` loop (what a researcher's script does); ours adds the ledger, the
ffprobe verification, the checksum, fsync + atomic rename and the summary. Then ours again
with 4 workers, to show what concurrency buys back. Prints seconds, per-clip times and ratios.

    python bench/bench_download.py [--clips 40]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core.config import load_config  # noqa: E402
from pipeline.core.sharding import Shard  # noqa: E402
from pipeline.demo.loopback_server import serve  # noqa: E402
from pipeline.demo.synthetic import write_dataset  # noqa: E402
from pipeline.download.stage import run_download  # noqa: E402


def serve_dir(root: Path, n_clips: int) -> list[str]:
    """N served names over 4 rendered clips (hard links: same bytes, no rendering time)."""
    source = root / "render"
    write_dataset(source, n_clips=4, n_classes=2, seed=7)
    rendered = sorted((source / "videos").glob("*.mp4"))
    served = root / "served"
    served.mkdir()
    names = []
    for i in range(n_clips):
        name = f"clip{i:05d}"
        os.link(rendered[i % len(rendered)], served / f"{name}.mp4")
        names.append(name)
    return names


def make_workdir(root: Path, url: str, names: list[str], workers: int,
                 name: str | None = None, **download: object) -> Path:
    """A work directory downloading `names` from `url` in full mode; `download` adds or
    overrides download settings (bench_pacing's backoff settings)."""
    wd = root / (name or f"w{workers}")
    wd.mkdir()
    config = {"dataset": {"name": "vggsound", "source": "url",
                          "url_template": f"{url}/{{video_id}}.mp4"},
              "download": {"mode": "full", "workers": workers, "requests_per_s": 0.0,
                           "socket_timeout_s": 5.0, **download}}
    (wd / "avel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    pd.DataFrame({"clip_id": names, "video_id": names,
                  "source": [f"{url}/{n}.mp4" for n in names],
                  "start_s": 0.0, "end_s": 10.0, "labels": [[] for _ in names],
                  "split": "train"}).to_parquet(wd / "manifest.parquet", index=False)
    return wd


def direct_loop(url: str, names: list[str], out: Path) -> float:
    import yt_dlp

    opts = {"outtmpl": str(out / "%(id)s.%(ext)s"), "quiet": True, "noprogress": True,
            "no_warnings": True, "retries": 0, "socket_timeout": 5.0}
    start = time.perf_counter()
    with yt_dlp.YoutubeDL(opts) as ydl:
        for name in names:
            ydl.extract_info(f"{url}/{name}.mp4", download=True)
    return time.perf_counter() - start


def ours(root: Path, url: str, names: list[str], workers: int) -> float:
    wd = make_workdir(root, url, names, workers)
    config = load_config(wd)
    start = time.perf_counter()
    summary = run_download(wd, config, Shard(0, 1), progress=False)
    elapsed = time.perf_counter() - start
    assert summary["done"] == len(names), summary
    return elapsed


def probe_cost(path: Path, n: int = 10) -> float:
    from pipeline.core.media_probe import probe

    start = time.perf_counter()
    for _ in range(n):
        probe(path)
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import yt_dlp  # noqa: F401  (import cost out of both timings)

    root = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        names = serve_dir(root, args.clips)
        with serve(root / "served") as server:
            (root / "direct").mkdir()
            direct_loop(server.url, names[:2], root / "direct")  # warm the extractors
            shutil.rmtree(root / "direct")
            (root / "direct").mkdir()
            base = direct_loop(server.url, names, root / "direct")
            one = ours(root, server.url, names, workers=1)
            four = ours(root, server.url, names, workers=4)
        probe_s = probe_cost(root / "served" / f"{names[0]}.mp4")
        n = len(names)
        size_kb = (root / "served" / (names[0] + ".mp4")).stat().st_size // 1000
        print(f"clips: {n} (loopback HTTP, ~{size_kb} kB each, full mode)")
        print(f"yt-dlp direct loop      : {base:7.2f} s  {1000 * base / n:7.1f} ms/clip")
        print(f"avel download, 1 worker : {one:7.2f} s  {1000 * one / n:7.1f} ms/clip"
              f"  ratio {one / base:5.2f}  overhead {1000 * (one - base) / n:+.1f} ms/clip")
        print(f"avel download, 4 workers: {four:7.2f} s  {1000 * four / n:7.1f} ms/clip"
              f"  ratio {four / base:5.2f}")
        print(f"of which ffprobe verification (one call per clip, mostly process start-up):"
              f" {1000 * probe_s:.1f} ms/clip")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
