"""Extract-stage throughput: our runner vs the original per-frame recipe, same inputs, same run.

Baseline = what the original scripts do: each frame a JPEG file opened with PIL, its own
preprocessing, one image per forward pass (batch 1, `torch.no_grad`, default memory format).
Ours = `avel extract` on the same frames stored as the cut stage stores them (worker
decode, packed batches, channels_last, inference_mode), including the HDF5 writes.
Both use the same seeded random weights, and the bench checks their features agree.

    python bench/bench_extract.py                      # CPU, small recipe (< 2 min)
    python bench/bench_extract.py --device cuda --precision bf16 --clips 64 --full
Prints one line per extractor: frames/s of each path and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractors import catalog  # noqa: E402
from extractors.frames import normalise, resize  # noqa: E402
from pipeline.core.config import load_config  # noqa: E402
from pipeline.core.sharding import Shard  # noqa: E402
from pipeline.extract.stage import run_extract  # noqa: E402
from pipeline.store import open_features  # noqa: E402
from tests.fixtures_visual import jpeg_frames, write_workdir  # noqa: E402


def options(name: str, frames: int, full: bool) -> dict:
    if full:
        return {}
    if name == "vgg19":
        return {"segments": 2, "frames_per_segment": frames // 2}
    return {"frames": frames, "min_frames": 1}


def per_frame_baseline(name: str, opts: dict, frame_dir: Path, clip_ids: list[str]) -> tuple[float, dict]:
    """The original loop: open each selected JPEG file with PIL, one forward per frame."""
    ex = catalog.create(name, weights="random", seed=0, **opts)
    net = ex.net.eval()
    out: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    frames_done = 0
    with torch.no_grad():
        for clip_id in clip_ids:
            paths = sorted((frame_dir / clip_id).glob("*.jpg"))
            rows = []
            for i in ex.select(len(paths)):
                image = Image.open(paths[i]).convert("RGB")
                pixels = torch.from_numpy(np.array(resize(image, ex.image))).permute(2, 0, 1)
                rows.append(net(normalise(pixels[None], ex.image)))
                frames_done += 1
            out[clip_id] = ex.assemble(torch.cat(rows))
    return frames_done / (time.perf_counter() - started), out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extractors", default="vgg19,resnet152")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (small recipe)")
    parser.add_argument("--full", action="store_true", help="the papers' recipes (160 / 80 frames)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.extractors.split(","):
            opts = options(name, args.frames, args.full)
            n_frames = (catalog.create(name, weights="random", **opts).frame_count() if args.full
                        else args.frames)
            clips = {f"{name}{i:04d}": n_frames for i in range(args.clips)}
            wd = write_workdir(root / name, clips, extract={
                "options": {name: opts}, "weights": {name: "random"}, "seed": 0,
                "num_workers": args.num_workers, "batch_size": args.batch_size,
                "device": args.device, "precision": args.precision, "flush_clips": 64})
            frame_dir = root / f"{name}-frames"
            for k, clip_id in enumerate(clips):  # same JPEG bytes as write_workdir stored
                (frame_dir / clip_id).mkdir(parents=True)
                for j, data in enumerate(jpeg_frames(n_frames, seed=k)):
                    (frame_dir / clip_id / f"{j + 1:06d}.jpg").write_bytes(data)
            summary = run_extract(wd.root, name, Shard(0, 1), load_config(wd.root), progress=False)
            # the runner's own clock: workers start → last part written (network build excluded,
            # as it is for the baseline)
            ours_fps = summary["done"] * n_frames / summary["seconds"]
            line = (f"{name}: ours {ours_fps:.2f} frames/s ({args.device}, {args.precision}, "
                    f"batch {args.batch_size}, time split {summary['timings']})")
            if not args.skip_baseline and args.device == "cpu":
                base_fps, base = per_frame_baseline(name, opts, frame_dir, list(clips))
                with open_features(wd.root, name) as reader:
                    diff = max(float(np.abs(reader[c] - base[c]).max()) for c in clips)
                    scale = max(float(np.abs(base[c]).max()) for c in clips)
                line += (f" | per-frame baseline {base_fps:.2f} frames/s | speedup x{ours_fps / base_fps:.2f}"
                         f" | max |diff| {diff:.2e} (scale {scale:.2e})")
            print(line, flush=True)


if __name__ == "__main__":
    main()
