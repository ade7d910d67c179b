#!/usr/bin/env bash
# End-to-end extract benchmark on a CUDA node: the real runner from cut clips to feature
# shards, VGG-19 pool5 / ResNet-152 / R(2+1)D-18 × fp32/tf32/bf16 × decode cpu/device ×
# batch sizes, and extract.compile (reduce-overhead: torch.compile + CUDA graphs) for VGG-19
# and ResNet-152 (`--no-compile` leaves those two rows out). Needs python3 with torch,
# torchvision, numpy, h5py, pandas, pyarrow, PyYAML, tqdm, Pillow; no ffmpeg, no yt-dlp,
# no network, no weights (seeded random weights). Runs from a plain copy of the repo (not
# installed). Prints a markdown table and writes it to $OUT/gpu_bench.md when OUT is set.
# Total ≤ 6 min (configurations are time-boxed).
#
#   bench/gpu.sh                  # on the GPU node
#   bench/gpu.sh --smoke          # tiny CPU run that checks the script (PYTHON=.venv/bin/python here)
#   bench/gpu.sh --budget 120     # any bench/gpu_extract.py option passes through
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# the hard stop is a safety net; the script's own budget (270 s of runs) ends it well before
exec timeout --signal=INT --kill-after=15 345 "$PY" -m bench.gpu_extract "$@"
