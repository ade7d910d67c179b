#!/usr/bin/env bash
# One Slurm array task per shard. Submit from the work directory's parent:
#   sbatch --array=0-7 docker/slurm-array.sh /path/to/workdir
# Slurm sets SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT, which `avel` reads as the
# shard index and count. With AVEL_IMAGE set, the job runs inside that container image
# through Apptainer, as the image runs everywhere: work directory at /work, weights cache at
# /cache (e.g. AVEL_IMAGE=avel.sif, made with `make image-archive` and
# `apptainer build avel.sif docker-archive://avel.tar`, or docker://registry/avel:latest);
# otherwise it uses the `avel` on PATH (a venv made with `make install`).
#SBATCH --job-name=avel
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=12:00:00
#SBATCH --output=avel-%A_%a.log
set -euo pipefail

WORKDIR=${1:?usage: sbatch --array=0-N slurm-array.sh WORKDIR [STAGES]}
STAGES=${2:-download,cut,extract}
CACHE=${AVEL_HOME:-$HOME/.cache/avel}

echo "avel shard ${SLURM_ARRAY_TASK_ID:-0} of ${SLURM_ARRAY_TASK_COUNT:-1} on $(hostname)"
if [[ -n "${AVEL_IMAGE:-}" ]]; then
  apptainer exec --nv \
    --bind "$WORKDIR:/work" --bind "$CACHE:/cache" --env AVEL_HOME=/cache \
    "$AVEL_IMAGE" avel run --workdir /work --stages "$STAGES"
else
  avel run --workdir "$WORKDIR" --stages "$STAGES"
fi
