"""How long the AVVP evaluation bookkeeping takes on the real LLP val+test lists.

Baseline (measured in the same run): the original `main_avvp.eval` way of building the
dense ground truth — filter the whole eval CSV with pandas for every video. Ours: index the
CSV rows by filename once (`DenseAnnotations`). Also times the scoring of all videos with
`models.metrics.avvp` (random predictions), which both approaches share.

Run: `python bench/bench_avvp_eval.py [data_dir]` (default tests/data/real).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models.metrics.avvp import AvvpScorer
from models.training.avvp_data import CLASS_INDEX, DenseAnnotations


def _default_data() -> Path:
    return Path(__file__).resolve().parents[1] / "tests" / "data" / "real"


def baseline_ground_truth(df: pd.DataFrame, name: str) -> np.ndarray:
    gt = np.zeros((25, 10))
    rows = df.loc[df["filename"] == name]
    for i in range(len(rows)):
        r = rows.index[i]
        gt[CLASS_INDEX[rows["event_labels"][r]], int(rows["onset"][r]):int(rows["offset"][r])] = 1
    return gt


def main(data: Path | None = None) -> None:
    llp = (data or _default_data()) / "llp"
    names = list(pd.read_csv(llp / "AVVP_val_pd.csv", sep="\t")["filename"]) + \
        list(pd.read_csv(llp / "AVVP_test_pd.csv", sep="\t")["filename"])
    df_a = pd.read_csv(llp / "AVVP_eval_audio.csv", sep="\t", header=0)
    df_v = pd.read_csv(llp / "AVVP_eval_visual.csv", sep="\t", header=0)

    t0 = time.perf_counter()
    base = [(baseline_ground_truth(df_a, n), baseline_ground_truth(df_v, n)) for n in names]
    t_base = time.perf_counter() - t0

    t0 = time.perf_counter()
    dense = DenseAnnotations.from_csv(llp / "AVVP_eval_audio.csv", llp / "AVVP_eval_visual.csv")
    ours = [dense.ground_truth(n)[:2] for n in names]
    t_ours = time.perf_counter() - t0
    same = all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(base, ours))

    rng = np.random.default_rng(0)
    scorer = AvvpScorer()
    t0 = time.perf_counter()
    for name, (gt_a, gt_v) in zip(names, ours):
        so_a = (rng.random((25, 10)) < 0.05).astype(int)
        so_v = (rng.random((25, 10)) < 0.05).astype(int)
        scorer.add(so_a, so_v, gt_a, gt_v, name)
    t_score = time.perf_counter() - t0

    print(f"videos: {len(names)} (val + test)")
    print(f"dense GT, per-video pandas filter (original): {t_base:.3f} s")
    print(f"dense GT, indexed once (ours):                {t_ours:.3f} s  "
          f"speed-up x{t_base / t_ours:.1f}, identical: {same}")
    print(f"scoring all videos (segment + event level):   {t_score:.3f} s "
          f"({1e3 * t_score / len(names):.2f} ms/video)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
