"""VGGish throughput: our batched torch path against the release-style path, same inputs, one run.

Baseline (what the release and video_features do): the float64 numpy frontend
(`waveform_to_examples`) per clip, then the network on that clip's examples alone.
Ours: the extractor's `preprocess` (waveform chunks) per clip, then log-mel + network in
batches of `--batch-size` examples packed across clips, on `--device` at `--precision`.
Prints examples/s for both and the ratio; also the largest difference between the two
paths' embeddings, so a speed-up never hides a change of result.

    python bench/bench_vggish.py [--clips 12] [--device cpu|cuda] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractors.base import ClipInput  # noqa: E402
from extractors.vggish import VGGishExtractor, waveform_to_examples  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_clips(count: int, seconds: int = 10, rate: int = 16000) -> list[ClipInput]:
    """Tones plus noise, int16 mono at 16 kHz (what the cut stage stores)."""
    rng = np.random.default_rng(0)
    t = np.arange(seconds * rate) / rate
    clips = []
    for i in range(count):
        wave = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(t.size)
        clips.append(ClipInput(audio=(wave * 32767).astype(np.int16), sample_rate=rate))
    return clips


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_baseline(extractor: VGGishExtractor, clips: list[ClipInput]) -> tuple[float, np.ndarray]:
    net = extractor.net.to("cpu", torch.float32)
    outputs = []
    start = time.perf_counter()
    with torch.inference_mode():
        for clip in clips:
            examples = waveform_to_examples(clip.audio / 32768.0, clip.sample_rate, "whole-clip")
            outputs.append(net(torch.from_numpy(examples).float()).numpy())
    return time.perf_counter() - start, np.stack(outputs)


def run_ours(extractor: VGGishExtractor, clips: list[ClipInput], device: torch.device,
             precision: str, batch_size: int) -> tuple[float, np.ndarray]:
    extractor.to(device)
    autocast = precision in ("bf16", "fp16")
    sync(device)
    start = time.perf_counter()
    items = torch.cat([extractor.preprocess(clip) for clip in clips])
    outputs = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=DTYPES.get(precision, torch.float32),
                                                enabled=autocast):
        for begin in range(0, len(items), batch_size):
            outputs.append(extractor.forward(items[begin:begin + batch_size].to(device)))
    result = torch.cat(outputs).cpu().numpy()
    sync(device)
    return time.perf_counter() - start, result.reshape(len(clips), -1, 128)


def frontend_only(extractor: VGGishExtractor, clips: list[ClipInput]) -> tuple[float, float]:
    """Seconds for the log-mel alone: release numpy float64 vs our torch fp32 (CPU)."""
    start = time.perf_counter()
    for clip in clips:
        waveform_to_examples(clip.audio / 32768.0, clip.sample_rate, "whole-clip")
    numpy_s = time.perf_counter() - start
    extractor.to("cpu")
    start = time.perf_counter()
    with torch.inference_mode():
        extractor.examples(torch.cat([extractor.preprocess(clip) for clip in clips]))
    return numpy_s, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    clips = make_clips(args.clips)
    extractor = VGGishExtractor("whole-clip", weights="random", seed=0)
    n_examples = 10 * len(clips)
    print(f"vggish bench: {len(clips)} clips x 10 examples, device {device}, "
          f"torch threads {torch.get_num_threads()}")
    # warm-up (allocator, cuDNN autotune) on two clips, not timed
    run_ours(extractor, clips[:2], device, "fp32", args.batch_size)
    numpy_s, torch_s = frontend_only(extractor, clips)
    print(f"  frontend only (cpu): numpy float64 {n_examples / numpy_s:8.1f} examples/s, "
          f"torch fp32 {n_examples / torch_s:8.1f} examples/s, ratio {numpy_s / torch_s:5.2f}x")
    base_s = base_out = None
    if not args.skip_baseline:
        base_s, base_out = run_baseline(extractor, clips)
        print(f"  baseline numpy frontend + one clip per forward (cpu fp32): "
              f"{n_examples / base_s:8.1f} examples/s")
    for precision in args.precision:
        ours_s, ours_out = run_ours(extractor, clips, device, precision, args.batch_size)
        line = f"  ours batched torch ({device.type} {precision}, batch {args.batch_size}): " \
               f"{n_examples / ours_s:8.1f} examples/s"
        if base_s is not None:
            diff = np.abs(ours_out - base_out).max() / max(np.abs(base_out).max(), 1e-9)
            line += f"  ratio {base_s / ours_s:5.2f}x  max rel diff vs baseline {diff:.1e}"
        print(line)


if __name__ == "__main__":
    main()
