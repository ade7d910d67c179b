"""Training and evaluation loops for AVVP models (HAN, PSP/CPSP-AVVP) on LLP features.

Evaluation is the AVVP-specific part: one video at a time (the original uses batch 1),
frame decisions gated by the video-level prediction (HAN: `global_prob`; PSP/CPSP: `a_prob`
for audio and `v_prob` for visual), dense ground truth looked up by the clip's filename,
scored with `models.avvp_metrics`. `fit` reproduces the original schedule: Adam, StepLR
stepped once per epoch, val evaluation after each epoch and selection by segment-level
Type@AV with `>=` (HAN), or the last epoch (PSP/CPSP). A generic trainer can call
`loss_function`, `evaluate` and `fit` directly.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from models.avvp_data import AvvpFeatures, DenseAnnotations
from models.avvp_metrics import AvvpScorer, video_predictions
from models.avvp_presets import AvvpPreset
from models.cpsp_avvp import cpsp_loss, psp_loss
from models.han import han_loss

log = logging.getLogger(__name__)
LossFn = Callable[[tuple, torch.Tensor], torch.Tensor]


def loss_function(kind: str) -> LossFn:
    return {"han": han_loss, "psp": psp_loss, "cpsp": cpsp_loss}[kind]


def _probabilities(outputs: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(global, audio, visual, frame) from a HAN 4-tuple or a PSP/CPSP 7-tuple."""
    if len(outputs) == 4:
        return outputs
    if len(outputs) == 7:
        return outputs[1], outputs[2], outputs[3], outputs[4]
    raise ValueError(f"unexpected AVVP model output of length {len(outputs)}")


def _to(batch: dict, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(batch[k].to(device) for k in ("audio", "video_s", "video_st", "label"))


def train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                loss_fn: LossFn, device: torch.device, desc: str = "train") -> float:
    """One pass over the loader; returns the mean batch loss."""
    model.train()
    losses = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=None):
        audio, v2d, v3d, target = _to(batch, device)
        optimizer.zero_grad()
        loss = loss_fn(model(audio, v2d, v3d), target.float())
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses)) if losses else float("nan")


@torch.no_grad()
def evaluate(model: nn.Module, dataset: AvvpFeatures, annotations: DenseAnnotations,
             gate: str = "global", device: torch.device | str = "cpu",
             desc: str = "eval") -> AvvpScorer:
    """Score every clip of `dataset` (in order) against the dense annotations."""
    model.eval()
    device = torch.device(device)
    scorer = AvvpScorer()
    loader = DataLoader(dataset, batch_size=1, shuffle=False)
    filenames = list(dataset.weak["filename"])
    for batch in tqdm(loader, desc=desc, leave=False, disable=None):
        audio, v2d, v3d, _ = _to(batch, device)
        global_prob, a_prob, v_prob, frame_prob = _probabilities(model(audio, v2d, v3d))
        frame = frame_prob[0].float().cpu().numpy()
        if gate == "global":
            so_a, so_v = video_predictions(frame, global_prob[0].float().cpu().numpy())
        elif gate == "modality":
            so_a, so_v = video_predictions(frame, a_prob[0].float().cpu().numpy(),
                                           v_prob[0].float().cpu().numpy())
        else:
            raise ValueError(f"gate must be 'global' or 'modality', not {gate!r}")
        name = filenames[int(batch["index"][0])]
        gt_a, gt_v, _ = annotations.ground_truth(name)
        scorer.add(so_a, so_v, gt_a, gt_v, video_id=name)
    return scorer


def _save(state: dict, path: Path) -> None:
    """Atomic torch.save: temp file in the same directory, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("-inf")
    checkpoint: Path | None = None


def fit(model: nn.Module, train: AvvpFeatures, val: AvvpFeatures, annotations: DenseAnnotations,
        preset: AvvpPreset, checkpoint: Path | None = None, device: torch.device | str = "cpu",
        on_epoch: Callable[[dict], None] | None = None) -> FitResult:
    """Train with the preset's schedule; save the selected model's state_dict to `checkpoint`."""
    device = torch.device(device)
    model.to(device)
    generator = torch.Generator().manual_seed(preset.seed)
    loader = DataLoader(train, batch_size=preset.batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=preset.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=preset.lr_step,
                                                gamma=preset.lr_gamma)
    loss_fn = loss_function(preset.loss)
    result = FitResult(checkpoint=checkpoint)
    for epoch in range(1, preset.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_epoch(model, loader, optimizer, loss_fn, device, desc=f"epoch {epoch}")
        scheduler.step()
        summary = evaluate(model, val, annotations, preset.gate, device, desc="val").summary()
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss,
               **{f"val_{k}": v for k, v in summary.items()}}
        score = summary[preset.select_metric]
        keep = score >= result.best_score if preset.select_best else epoch == preset.epochs
        if keep:
            result.best_epoch, result.best_score = epoch, score
            if checkpoint is not None:
                _save(model.state_dict(), checkpoint)
        row["kept"] = keep
        result.history.append(row)
        log.info("epoch %d loss %.4f val %s %.2f%s", epoch, train_loss, preset.select_metric,
                 score, " (kept)" if keep else "")
        if on_epoch is not None:
            on_epoch(row)
    return result
