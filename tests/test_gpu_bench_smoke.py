"""bench/gpu.sh must run unchanged on a GPU node that has no ffmpeg, no yt-dlp and no
weights; its --smoke mode runs the same script on the CPU. This keeps it from rotting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_gpu_bench_smoke_runs_every_configuration_and_writes_the_table(tmp_path: Path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out)}
    done = subprocess.run(["bash", str(REPO_ROOT / "bench" / "gpu.sh"), "--smoke"], env=env,
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (out / "gpu_bench.md").read_text(encoding="utf-8")
    assert "weights: RANDOM" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "frames/s" not in line]
    assert len(rows) == 8, table
    assert not any("error" in r or "skipped" in r for r in rows), table
    assert "(no-op net)" in table and "resnet152+r2plus1d_18" in table
    assert "vgg19 (contiguous) | fp32 |" in table
    # extract.compile: the compiled row ran its compile shard and a measured one
    assert any(r.startswith("| vgg19 (compiled reduce-overhead) | bf16 | device | 2 | 16 |")
               and r.split("|")[8].strip() == "1/2" for r in rows), table
    # device decode ahead (2 threads, several clips a call: 3 clips × 4 frames = 12) and clip
    # by clip (0 threads: one call per clip)
    assert any(r.startswith("| vgg19 | bf16 | device | 2 | 16 |") for r in rows), table
    clip_by_clip = [r for r in rows if r.startswith("| vgg19 | bf16 | device | 0 | 16 |")]
    assert len(clip_by_clip) == 1 and clip_by_clip[0].split("|")[11].strip() == "4", table
    assert all(len(r.split("|")) == len(rows[0].split("|")) for r in rows), table
    # the device-decode check ran for each recipe; the Keras nearest recipe matches PIL exactly
    assert "- vgg19 (4 frames, exact nearest → 32): pixel |diff| max 0" in table
    assert "decode check failed" not in table
