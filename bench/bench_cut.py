"""Cut throughput: `avel cut` (HDF5 shard, K workers) against the original per-clip recipe
(one ffmpeg call writing loose JPEGs with `-r 8 %06d.jpg`, then a separate ffmpeg call
writing the 16 kHz mono wav), on the same generated clips in one run.

Run: python -m bench.bench_cut [--clips 12] [--workers 2]; prints frames/s, clips/s, ratios.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from pipeline.core.config import load_config  # noqa: E402
from pipeline.cut.stage import run_cut  # noqa: E402
from pipeline.core.sharding import Shard  # noqa: E402
from pipeline.demo.synthetic import write_dataset  # noqa: E402


def original_recipe(videos: list[Path], out: Path) -> int:
    """The per-clip scripts, one clip after the other; returns frames written."""
    frames = 0
    for video in videos:
        frame_dir = out / "frame" / video.stem
        frame_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(video), "-y", "-r", "8",
                        str(frame_dir / "%06d.jpg")], check=True)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(video), "-acodec",
                        "pcm_s16le", "-ac", "1", "-ar", "16000", str(out / f"{video.stem}.wav")],
                       check=True)
        frames += len(list(frame_dir.glob("*.jpg")))
    return frames


def ours(videos: list[Path], workdir: Path, workers: int) -> int:
    """`avel cut` with the llp-8fps + vggsound recipes; returns frames decoded."""
    workdir.mkdir(parents=True)
    (workdir / "avel.yaml").write_text(yaml.safe_dump({
        "dataset": {"name": "ave", "source": "local", "videos_dir": "videos"},
        "cut": {"frames_recipe": "llp-8fps", "audio_recipe": "vggsound", "workers": workers,
                "batch_clips": 8}}))
    pd.DataFrame({"clip_id": [v.stem for v in videos], "video_id": [v.stem for v in videos],
                  "source": [str(v) for v in videos], "start_s": 0.0, "end_s": 10.0,
                  "labels": [[] for _ in videos], "split": "test"}).to_parquet(
        workdir / "manifest.parquet", index=False)
    summary = run_cut(workdir, load_config(workdir), Shard(0, 1), progress=False)
    assert summary.done == len(videos), summary
    import h5py
    with h5py.File(workdir / "clips" / "00000-of-00001.h5", "r") as fh:
        return sum(int(fh[c].attrs["decoded_frames"]) for c in fh)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root / "data", n_clips=args.clips)
        videos = sorted((root / "data" / "videos").glob("*.mp4"))
        rows = []
        cpu0, start = cpu_seconds(), time.perf_counter()
        n = original_recipe(videos, root / "original")
        rows.append(("original per-clip recipe (loose jpg + wav)", time.perf_counter() - start, n,
                     cpu_seconds() - cpu0))
        for workers in sorted({1, args.workers}):
            cpu0, start = cpu_seconds(), time.perf_counter()
            n = ours(videos, root / f"ours{workers}", workers)
            # pool workers are forkserver children, not ours: their CPU time is not visible
            cpu = cpu_seconds() - cpu0 if workers == 1 else float("nan")
            rows.append((f"avel cut, {workers} worker(s) (HDF5)", time.perf_counter() - start, n, cpu))
    base = rows[0][1]
    print(f"{len(videos)} generated clips (10 s, 160x120, 16 fps), llp-8fps frames + 16 kHz audio; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'method':<44}{'seconds':>9}{'clips/s':>9}{'frames/s':>10}{'speed-up':>10}"
          f"{'CPU s/clip':>12}")
    for name, seconds, frames, cpu in rows:
        print(f"{name:<44}{seconds:>9.2f}{len(videos) / seconds:>9.2f}{frames / seconds:>10.1f}"
              f"{base / seconds:>9.2f}x{cpu / len(videos):>12.3f}")


def cpu_seconds() -> float:
    """User + system time of this process and its waited-for children (ffmpeg, ffprobe)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
