"""A small, complete training loop for the baselines that follows each preset exactly (batch
order, schedule stepping, clipping, dtype, evaluation cadence, checkpoint selection).

It exists so that every baseline trains and is evaluated the way its original script did,
with or without the generic trainer; `step` is the one optimisation step both use."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from models.training.baseline_data import AVEFeatures, video_labels
from models.metrics.cmm import cross_modal_localization, pairwise_distances
from models.training.baseline_objectives import OBJECTIVES, Batch, Objective
from models.training.baseline_hparams import BaselinePreset, get_preset
from models.registry import build

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_baseline(preset: BaselinePreset, device: torch.device | str = "cpu") -> nn.Module:
    model = build(preset.model, **preset.model_kwargs)
    return model.to(device=device, dtype=getattr(torch, preset.dtype))


def make_optimizer(model: nn.Module, preset: BaselinePreset):
    opt = torch.optim.Adam(model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
    s = preset.schedule
    if s.kind == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    elif s.kind == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(s.milestones), gamma=s.gamma)
    else:
        sched = None
    return opt, sched


def step(model: nn.Module, objective: Objective, batch: Batch, optimizer: torch.optim.Optimizer,
         clip_grad_norm: float | None = None, options: dict | None = None) -> float:
    """One optimisation step; returns the loss before the update."""
    model.train()
    out = objective.forward(model, batch)
    loss = objective.loss(out, batch, options or {})
    optimizer.zero_grad()
    loss.backward()
    if clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    return float(loss.detach())


def segment_accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage of segments whose prediction equals argmax of the one-hot ground truth."""
    return float((pred == labels.argmax(-1)).double().mean() * 100)


def _tensor(x: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x)).to(device=device, dtype=dtype)


def _batches(n: int, size: int, shuffle: bool, drop_last: bool, rng: np.random.Generator):
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % size if drop_last else n
    for i in range(0, stop, size):
        yield order[i:i + size]


class _Pool:
    """Training/eval samples of one split as arrays (plus background-only videos for weak)."""

    def __init__(self, data: AVEFeatures, idx: np.ndarray, noisy: bool) -> None:
        self.audio, self.video = data.audio[idx], data.video[idx]
        self.labels = data.labels[idx]
        self.video_labels = video_labels(data)[idx]
        if noisy and data.noisy is not None:
            na, nv, nl = data.noisy
            self.audio = np.concatenate([self.audio, na])
            self.video = np.concatenate([self.video, nv])
            bg = np.zeros((len(na), 10, self.labels.shape[-1]), self.labels.dtype)
            bg[:, :, -1] = 1
            self.labels = np.concatenate([self.labels, bg])
            self.video_labels = np.concatenate([self.video_labels, nl.astype(self.video_labels.dtype)])

    def __len__(self) -> int:
        return len(self.audio)

    def batch(self, rows: np.ndarray, dtype: torch.dtype, device: torch.device) -> Batch:
        return {"audio": _tensor(self.audio[rows], dtype, device),
                "video": _tensor(self.video[rows], dtype, device),
                "labels": _tensor(self.labels[rows], dtype, device),
                "video_labels": _tensor(self.video_labels[rows], dtype, device)}


@torch.no_grad()
def evaluate(model: nn.Module, objective: Objective, pool: _Pool, preset: BaselinePreset,
             device: torch.device) -> float:
    model.eval()
    dtype = getattr(torch, preset.dtype)
    correct = total = 0
    for rows in _batches(len(pool), preset.eval_batch_size, False, False, np.random.default_rng(0)):
        batch = pool.batch(rows, dtype, device)
        pred = objective.predict(objective.forward(model, batch), preset.options)
        correct += int((pred == batch["labels"].argmax(-1)).sum())
        total += pred.numel()
    return 100.0 * correct / max(total, 1)


def train_baseline(model_name: str, task: str, data: AVEFeatures, out_dir: str | Path,
                   overrides: dict[str, Any] | None = None, device: str = "auto") -> dict[str, Any]:
    """Trains one baseline per its preset, writes `model.pt` (selected weights) and
    `metrics.json` into out_dir, and returns the metrics."""
    preset = get_preset(model_name, task, overrides)
    if task == "ave-cmm":
        return _train_cmm(preset, data, Path(out_dir), device)
    dev = resolve_device(device)
    seed_everything(preset.seed)
    objective = OBJECTIVES[preset.objective]
    model = build_baseline(preset, dev)
    optimizer, scheduler = make_optimizer(model, preset)
    dtype = getattr(torch, preset.dtype)
    train = _Pool(data, data.orders["train"], preset.extra_background_videos)
    splits = {s: _Pool(data, data.orders[s], False) for s in ("val", "test")}
    rng = np.random.default_rng(preset.seed)
    history, best, best_state = [], None, None
    for epoch in range(preset.epochs):
        losses = []
        for rows in _batches(len(train), preset.batch_size, preset.shuffle, preset.drop_last, rng):
            losses.append(step(model, objective, train.batch(rows, dtype, dev), optimizer,
                               preset.clip_grad_norm, preset.options))
            if scheduler is not None and preset.schedule.per == "iteration":
                scheduler.step()
        if scheduler is not None and preset.schedule.per == "epoch":
            scheduler.step()
        row = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan")}
        if epoch % preset.eval_every == 0 or epoch == preset.epochs - 1:
            row.update({f"{s}_accuracy": evaluate(model, objective, p, preset, dev)
                        for s, p in splits.items()})
            key = preset.select_on
            score = row.get(f"{key}_accuracy", 0.0) if key != "last" else epoch
            if best is None or score > best[0]:
                best = (score, dict(row))
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        history.append(row)
        log.info("epoch %d %s", epoch, row)
    chosen = best[1] if best else history[-1]
    metrics = {"model": model_name, "task": task, "selected_on": preset.select_on,
               "original_select_on": preset.original_select_on, "best_epoch": chosen["epoch"],
               "val_accuracy": chosen.get("val_accuracy"), "test_accuracy": chosen.get("test_accuracy"),
               "history": history, "preset": asdict(preset)}
    _save(Path(out_dir), best_state or model.state_dict(), metrics)
    return metrics


def _save(out: Path, state: dict, metrics: dict) -> None:
    from_io = out / "model.pt"
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".model.pt.tmp"
    torch.save({"state_dict": state, "model": metrics["model"], "task": metrics["task"],
                "model_kwargs": metrics["preset"]["model_kwargs"]}, tmp)
    tmp.replace(from_io)
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2, default=str))
    tmp.replace(out / "metrics.json")


def cmm_scores(model: nn.Module, data: AVEFeatures, split: str, dtype: torch.dtype,
               device: torch.device) -> dict[str, float]:
    idx = data.match_orders[split]
    vv = _tensor(data.video_vec()[idx], dtype, device)
    aa = _tensor(data.audio[idx], dtype, device)
    model.eval()
    dist = pairwise_distances(lambda v, a: model(v, a), vv, aa)
    res = cross_modal_localization(dist, data.closs[idx])
    return {f"{split}_a2v": res.a2v, f"{split}_v2a": res.v2a, f"{split}_videos": res.videos}


def _train_cmm(preset: BaselinePreset, data: AVEFeatures, out: Path, device: str) -> dict[str, Any]:
    if data.closs is None or not data.match_orders:
        raise FileNotFoundError("CMM needs labels_closs.h5 and {train,val,test}_order_match.h5")
    dev = resolve_device(device)
    seed_everything(preset.seed)
    objective = OBJECTIVES["cmm"]
    model = build_baseline(preset, dev)
    optimizer, _ = make_optimizer(model, preset)
    dtype = getattr(torch, preset.dtype)
    idx = data.match_orders["train"]
    video = data.video_vec()[idx].reshape(-1, data.video.shape[-1])
    audio = data.audio[idx].reshape(-1, data.audio.shape[-1])
    match = data.closs[idx].reshape(-1)
    rng = np.random.default_rng(preset.seed)
    history = []
    for epoch in range(preset.epochs):
        losses = []
        for rows in _batches(len(match), preset.batch_size, preset.shuffle, False, rng):
            batch = {"video_vec": _tensor(video[rows], dtype, dev), "audio": _tensor(audio[rows], dtype, dev),
                     "match": _tensor(match[rows], dtype, dev)}
            losses.append(step(model, objective, batch, optimizer, None, preset.options))
        history.append({"epoch": epoch, "loss": float(np.mean(losses))})
    with torch.no_grad():
        scores = {**cmm_scores(model, data, "val", dtype, dev), **cmm_scores(model, data, "test", dtype, dev)}
    metrics = {"model": preset.model, "task": preset.task, "selected_on": "last",
               "best_epoch": preset.epochs - 1, **scores, "history": history, "preset": asdict(preset)}
    _save(out, model.state_dict(), metrics)
    return metrics
