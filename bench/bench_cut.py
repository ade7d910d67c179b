"""Cut throughput: `avel cut` (HDF5 shard, K workers) against the original per-clip recipe
(one ffmpeg call writing loose JPEGs with `-r 8 %06d.jpg`, then a separate ffmpeg call
writing the 16 kHz mono wav), on the same generated clips in one run.

Second table: the ave-vgg19 cut (16 native frames per second) on YouTube-sized clips
(480x360, 30 fps, H.264): kept frames per CPU-second (frames/s per core). The baseline is
the cut as it was before issues #16/#19, rebuilt here from the same pieces: one ffprobe,
then one ffmpeg encoding every frame at ffmpeg's default quality, the AVE rule picking
afterwards by index. Against it: encoding every frame and selecting afterwards (at the
default and at -q:v 2), the selection inside ffmpeg's graph (only kept frames are
JPEG-encoded), `-threads 1` with as many workers as cores and the cut's own ffprobe that also
lists the clip's packets (what a cut of files without a download ledger entry still does),
and the cut given the download's probe from the ledger (today's path: one ffmpeg per clip,
no ffprobe; core/carried_probe). The download stage probed every file in the baseline's
time too, and the old cut ignored that probe and ran its own: the work the last row drops
was done twice, not moved. The download's probe (made once per file by `avel download` on
these clips as local videos) is outside the timed part in every row.

Run: python -m bench.bench_cut [--clips 12] [--workers 2] [--rounds 3] [--ave-only]; prints
frames/s, clips/s, ratios.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from pipeline.core.config import load_config  # noqa: E402
from pipeline.core.media_probe import probe  # noqa: E402
from pipeline.core.sharding import Shard  # noqa: E402
from pipeline.core.workdir import Workdir  # noqa: E402
from pipeline.cut.audio import audio_output, finish_audio  # noqa: E402
from pipeline.cut.checks import Span  # noqa: E402
from pipeline.cut.clip import CutSettings, CutTask, cut_clip  # noqa: E402
from pipeline.cut.ffmpeg_pipes import clip_input, compile_args, run  # noqa: E402
from pipeline.cut.frames import finish_frames, frames_output  # noqa: E402
from pipeline.cut.recipes import audio_recipe, frames_recipe  # noqa: E402
from pipeline.cut.stage import plan_tasks, run_cut  # noqa: E402
from pipeline.datasets.manifest import MEDIA_COLUMNS  # noqa: E402
from pipeline.datasets.manifest_scan import read_shard_rows  # noqa: E402
from pipeline.demo.synthetic import write_dataset  # noqa: E402
from pipeline.download.stage import run_download  # noqa: E402


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
    parser.add_argument("--rounds", type=int, default=3, help="repeats of the ave-vgg19 table")
    parser.add_argument("--ave-only", action="store_true", help="only the ave-vgg19 table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.ave_only:
            print(ave_vgg19_table(root, args.clips, args.rounds))
            return
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
        ave_rows = ave_vgg19_table(root, args.clips, args.rounds)
    base = rows[0][1]
    print(f"{len(videos)} generated clips (10 s, 160x120, 16 fps), llp-8fps frames + 16 kHz audio; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'method':<44}{'seconds':>9}{'clips/s':>9}{'frames/s':>10}{'speed-up':>10}"
          f"{'CPU s/clip':>12}")
    for name, seconds, frames, cpu in rows:
        print(f"{name:<44}{seconds:>9.2f}{len(videos) / seconds:>9.2f}{frames / seconds:>10.1f}"
              f"{base / seconds:>9.2f}x{cpu / len(videos):>12.3f}")
    print(ave_rows)


def youtube_like_clips(directory: Path, n: int) -> list[Path]:
    """n 10-s clips shaped like a 360p YouTube download: 480x360, 30 fps, H.264, AAC."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = directory / f"yt{i:03d}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size=480x360:rate=30:duration=10.5,hue=H={i}", "-f", "lavfi",
                        "-i", f"sine=frequency={300 + 50 * i}:sample_rate=44100:duration=10.5",
                        "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-c:a", "aac",
                        "-shortest", str(path)], check=True)
        out.append(path)
    return out


def old_ave_vgg19_cut(video: Path) -> int:
    """The cut before #16/#19 for one whole 10-s clip: probe, one ffmpeg writing the audio
    and every frame as JPEG (ffmpeg's default quality and threads), the AVE rule picking by
    index; returns the kept frames."""
    info = probe(video)
    a_recipe = audio_recipe("vggsound")
    f_recipe = frames_recipe("ave-vgg19")
    source = clip_input(video, 0.0, None)
    args = compile_args(audio_output(source, a_recipe, "pipe:1", native_rate=info.sample_rate,
                                     native_channels=info.channels),
                        frames_output(source, f_recipe, "pipe:3", jpeg_quality=None, scale=None))
    pcm, stream = run(args, 600.0)
    finish_audio(pcm, a_recipe, clip_duration_s=10.0, native_rate=info.sample_rate,
                 native_channels=info.channels, args=args)
    frames = finish_frames(stream, f_recipe, clip_seconds=10,
                           native_fps=info.avg_frame_rate or info.r_frame_rate, args=args)
    return len(frames.jpegs)


def old_ave_vgg19_rate(videos: list[Path], workers: int) -> tuple[float, float, int]:
    cpu0, start = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        kept = sum(pool.map(old_ave_vgg19_cut, videos))
    return time.perf_counter() - start, cpu_seconds() - cpu0, kept


def downloaded_tasks(videos: list[Path], workdir: Path) -> list[CutTask]:
    """The cut's tasks for `videos` as `avel download` leaves them (local videos, hard
    links in raw/): each carries the download's probe with the clip's packet times."""
    workdir.mkdir(parents=True)
    (workdir / "avel.yaml").write_text(yaml.safe_dump({
        "dataset": {"name": "ave", "source": "local", "videos_dir": str(videos[0].parent)},
        "cut": {"frames_recipe": "ave-vgg19", "audio_recipe": "vggsound"}}))
    pd.DataFrame({"clip_id": [v.stem for v in videos], "video_id": [v.stem for v in videos],
                  "source": [str(v) for v in videos], "start_s": 0.0, "end_s": 10.0,
                  "labels": [[] for _ in videos], "split": "test"}).to_parquet(
        workdir / "manifest.parquet", index=False)
    shard = Shard(0, 1)
    run_download(workdir, load_config(workdir), shard, progress=False)
    rows = read_shard_rows(workdir, shard, MEDIA_COLUMNS)
    tasks = plan_tasks(Workdir(workdir), shard, rows, loose=False)[0]
    assert len(tasks) == len(videos) and all(t.probe and "video_pts" in t.probe for t in tasks)
    return [CutTask(t.clip_id, t.path, t.source_file, Span(0.0, 10.0), probe=t.probe)
            for t in tasks]


def ave_vgg19_rate(videos: list[Path], *, in_graph: bool, threads: int | None,
                   quality: int | None, workers: int, tasks: list[CutTask] | None = None
                   ) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, kept frames) for cutting `videos` (or `tasks`) with
    ave-vgg19."""
    settings = CutSettings(audio_recipe="vggsound", frames_recipe="ave-vgg19",
                           jpeg_quality=quality, scale=None, allow=(), max_pixels=4096 * 2160,
                           max_pad_s=0.5, span_slack_s=0.1, timeout_s=600.0,
                           ffmpeg_version="bench", ffmpeg_threads=threads,
                           select_in_graph=in_graph)
    if tasks is None:
        tasks = [CutTask(v.stem, str(v), v.name, Span(0.0, 10.0)) for v in videos]
    cpu0, start = cpu_seconds(), time.perf_counter()
    # threads only wait on ffmpeg children, whose CPU time the rusage of children counts
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda t: cut_clip(t, settings), tasks))
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
    bad = [r for r in results if r.reason]
    assert not bad, bad[0]
    return wall, cpu, sum(len(r.media.frames) for r in results if r.media)


def ave_vgg19_table(root: Path, n_clips: int, rounds: int = 3) -> str:
    """Each method `rounds` times, in a rotated order per round, so load from other work on
    the machine falls on all of them alike; the table gives each method's median CPU time."""
    videos = youtube_like_clips(root / "yt", n_clips)
    cores = os.cpu_count() or 1
    variants = [("every frame encoded, ffmpeg default q", False, None, None),
                ("every frame encoded, -q:v 2", False, None, 2),
                ("select in the graph, -q:v 2", True, None, 2),
                ("select in the graph, -q:v 2, -threads 1, own probe", True, 1, 2)]
    methods: list[tuple[str, Callable[[], tuple[float, float, int]]]] = [
        ("before #16/#19: probe + every frame, default q",
         lambda: old_ave_vgg19_rate(videos, cores))]
    methods += [(name, functools.partial(ave_vgg19_rate, videos, in_graph=g, threads=t,
                                         quality=q, workers=cores))
                for name, g, t, q in variants]
    carried = downloaded_tasks(videos, root / "downloaded")
    methods.append(("carried probe: the download's, no ffprobe (now)",
                    functools.partial(ave_vgg19_rate, videos, in_graph=True, threads=1,
                                      quality=2, workers=cores, tasks=carried)))
    runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _ in methods}
    loads = []
    for r in range(rounds):
        for name, measure in methods[r % len(methods):] + methods[:r % len(methods)]:
            runs[name].append(measure())
            loads.append(os.getloadavg()[0])
    rows = [(name, statistics.median(w for w, _, _ in runs[name]),
             statistics.median(c for _, c, _ in runs[name]), runs[name][0][2])
            for name, _ in methods]
    base = rows[0][3] / rows[0][2]
    lines = [f"\nave-vgg19 + vggsound audio, {len(videos)} clips of 10 s at 480x360 30 fps; "
             f"{cores} workers on {cores} CPUs; median of {rounds} rounds; load average "
             f"{min(loads):.1f}-{max(loads):.1f}",
             f"{'method':<50}{'wall s':>8}{'CPU s':>8}{'frames/s/core':>15}{'ratio':>8}"
             f"  {'ratio per round':<20}"]
    for name, wall, cpu, frames in rows:
        per_round = " ".join(f"{f / c / (runs[rows[0][0]][i][2] / runs[rows[0][0]][i][1]):.2f}"
                             for i, (_, c, f) in enumerate(runs[name]))
        lines.append(f"{name:<50}{wall:>8.2f}{cpu:>8.2f}{frames / cpu:>15.1f}"
                     f"{frames / cpu / base:>7.2f}x  {per_round}")
    return "\n".join(lines)


def cpu_seconds() -> float:
    """User + system time of this process and its waited-for children (ffmpeg, ffprobe)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
