"""Where a training run lives and which network an evaluation scores: shared by the AVE-style
stage (`pipeline.train.stage`) and the AVVP one (`pipeline.train.avvp`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from models.training.trainer import RunError, load_checkpoint
from models.weights.checkpoints import load_official
from pipeline.core.errors import InputError
from pipeline.core.shard_lock import shard_lock


def run_dir(workdir: str | Path, task: str, model: str) -> Path:
    return Path(workdir) / "train" / f"{task}__{model}"


@contextmanager
def training_run(workdir: str | Path, task: str, model: str) -> Iterator[Path]:
    """Hold run `task__model` for one `avel train`: a second one on the same run (which would
    interleave checkpoints, last writer winning) exits 2 naming the holder's pid, as a second
    stage run on a locked shard does (`state/train/<task>__<model>.lock`). What the trainer
    refuses (an unreadable or foreign last.pt, changed settings, a diverged loss) is bad input,
    exit 2, with the file it names."""
    with shard_lock(workdir, "train", f"{task}__{model}", unit="run"):
        try:
            yield run_dir(workdir, task, model)
        except RunError as exc:
            raise InputError(str(exc)) from None


def eval_dir(run: Path, split: str, checkpoint: str | Path | None,
             official_arch: str | None = None) -> Path:
    """Where an evaluation writes: `eval/<split>` for the run's own best.pt; a checkpoint
    passed in gets its own folder, `eval/checkpoints/<stem>-<hash of its path>[-arch]/<split>`,
    so evaluating a foreign file never overwrites the run's results."""
    if checkpoint is None:
        return run / "eval" / split
    path = Path(checkpoint).resolve()
    tag = f"{path.stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    return run / "eval" / "checkpoints" / (f"{tag}-{official_arch}" if official_arch else tag) / split


def network_to_evaluate(trainer: Any, checkpoint: str | Path | None, official_arch: str | None,
                        trust_pickles: bool) -> torch.nn.Module:
    """The run's best network, a checkpoint of ours, or an authors' release (`official_arch`)."""
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise InputError("no such file", file=checkpoint, field="--checkpoint")
    try:
        if checkpoint is not None and official_arch:
            net = load_official(checkpoint, official_arch, trust_pickles=trust_pickles)
            return net.to(trainer.device, trainer.dtype)
        if checkpoint is not None:
            net = trainer._model()
            net.load_state_dict(load_checkpoint(checkpoint, trainer.device)["model"])
            return net
        return trainer.load_best()
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as exc:
        where = checkpoint if checkpoint is not None else trainer.ckpt_dir
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = reason.removeprefix(f"{where}: ").strip("'\"")
        raise InputError(f"cannot load: {reason[:300]}", file=where,
                         field="--checkpoint" if checkpoint is not None else None) from exc
