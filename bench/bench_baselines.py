"""Training-step cost of each AVE baseline: float32 against the float64 the CPSP and CMBS
scripts use (`model.double()`), measured in the same run. Prints ms per step (forward +
backward + Adam) on a batch of 8 AVE videos and the float64/float32 ratio.

    python bench/bench_baselines.py [--batch 8] [--repeats 3] [--device cpu|cuda]"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = [("av_att", "ave-fully"), ("dmrn", "ave-fully"), ("avel", "ave-fully"), ("avsdn", "ave-fully"),
         ("cmran", "ave-fully"), ("cmbs", "ave-fully"), ("cmbs", "ave-weakly")]


def time_step(model_name: str, task: str, dtype: torch.dtype, batch: int, repeats: int, device: str) -> float:
    from models.registry import build
    from models.training.baseline_fit import step
    from models.training.baseline_hparams import get_baseline_hparams
    from models.training.baseline_objectives import OBJECTIVES

    preset = get_baseline_hparams(task, model_name)
    objective = OBJECTIVES[preset.objective]
    torch.manual_seed(0)
    model = build(model_name, **preset.model_kwargs).to(device=device, dtype=dtype)
    labels = torch.zeros(batch, 10, 29, dtype=dtype, device=device)
    labels[:, :, 28] = 1
    labels[:, 3:7, 28], labels[:, 3:7, 5] = 0, 1
    video_labels = torch.zeros(batch, 29, dtype=dtype, device=device)
    video_labels[:, 5] = 1
    data = {"audio": torch.randn(batch, 10, 128, dtype=dtype, device=device),
            "video": torch.randn(batch, 10, 7, 7, 512, dtype=dtype, device=device).abs(),
            "labels": labels, "video_labels": video_labels}
    opt = torch.optim.Adam(model.parameters(), lr=preset.lr)
    step(model, objective, data, opt, preset.clip_grad_norm, preset.options)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step(model, objective, data, opt, preset.clip_grad_norm, preset.options)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    print(f"{'model':<8} {'task':<11} {'fp32 ms':>9} {'fp64 ms':>9} {'fp64/fp32':>10}")
    for name, task in CASES:
        f32 = time_step(name, task, torch.float32, args.batch, args.repeats, args.device)
        f64 = time_step(name, task, torch.float64, args.batch, args.repeats, args.device)
        print(f"{name:<8} {task:<11} {f32:9.1f} {f64:9.1f} {f64 / f32:10.2f}")


if __name__ == "__main__":
    main()
