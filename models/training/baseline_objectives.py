"""Loss and prediction rule of each baseline's original training script, one `Objective` per
protocol, so any training loop can drive any baseline.

Batch convention (dict of tensors): `audio` [B,T,128], `video` [B,T,7,7,512] (channels last),
`labels` [B,T,C+1] per-segment one-hot with background last, `video_labels` [B,C+1] (weak
training; the background column is set only for background-only videos). CMM batches carry
`video_vec` [B,T,512] and `match` [B,T] instead.

Predictions are segment labels [B,T] in 0..C, C being background, compared with
argmax(labels) by the shared segment accuracy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.baselines.cmm import contrastive_loss

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Objective:
    name: str
    forward: Callable[[nn.Module, Batch], Any]
    loss: Callable[[Any, Batch, dict], torch.Tensor]
    predict: Callable[[Any, dict], torch.Tensor]  # -> [B,T] long, background = C


def _av(model: nn.Module, batch: Batch):
    return model(audio=batch["audio"], video=batch["video"])


def segment_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """labels [B,T,C+1] -> (is-event 0/1 [B,T], video class [B]) as the CPSP/CMBS scripts
    derive them: max over foreground columns, then the max over time of the per-segment argmax."""
    foreground = labels[:, :, :-1]
    is_event, per_segment = foreground.max(-1)
    return is_event, per_segment.max(-1).values


def threshold_rule(is_event_logits: torch.Tensor, class_logits: torch.Tensor, background: int,
                   already_probability: bool = False) -> torch.Tensor:
    """sigmoid(is_event) > 0.5 -> the video's argmax class, else background."""
    p = is_event_logits if already_probability else is_event_logits.sigmoid()
    pred = class_logits.argmax(-1)[:, None].expand_as(p).clone()
    pred[p <= 0.5] = background
    return pred


# ECCV18 (AV_att, DMRN): MultiLabelSoftMarginLoss on the softmax probabilities (kept as the original)
def _eccv18_fully_loss(out, batch, opts):
    return F.multilabel_soft_margin_loss(out, batch["labels"].to(out.dtype))


def _argmax_segments(out, opts):
    return out.argmax(-1)


# ECCV18 weak (W-A+V-att): video probabilities vs the MIL one-hot; segments from the pre-pool scores
def _eccv18_weak_loss(out, batch, opts):
    return F.multilabel_soft_margin_loss(out[0], batch["video_labels"].to(out[0].dtype))


def _eccv18_weak_predict(out, opts):
    return out[1].argmax(-1)


# CPSP protocol for AVEL / AVSDN / CMRAN
def _cpsp_is_event(out) -> torch.Tensor:
    first = out[0]
    if first.dim() == 3:  # CMRAN: [T,B,1]
        return first.squeeze(-1).transpose(0, 1)
    return first


def _cpsp_fully_loss(out, batch, opts):
    is_event, video_class = segment_targets(batch["labels"])
    logits = _cpsp_is_event(out)
    return (F.binary_cross_entropy_with_logits(logits, is_event.to(logits.dtype))
            + F.cross_entropy(out[1], video_class))


def _cpsp_fully_predict(out, opts):
    return threshold_rule(_cpsp_is_event(out), out[1], out[1].shape[-1])


def _cpsp_weak_parts(out):
    """AVEL/AVSDN weak return (fusion, event, raw, probs); CMRAN weak (event, raw, probs)."""
    return out[-3], out[-2], out[-1]


def _cpsp_weak_loss(out, batch, opts):
    _, _, probs = _cpsp_weak_parts(out)
    return F.multilabel_soft_margin_loss(probs, batch["video_labels"][:, :-1].to(probs.dtype))


def _cpsp_weak_predict(out, opts):
    event, raw, _ = _cpsp_weak_parts(out)
    return threshold_rule(event, raw, raw.shape[-1])


# CMBS
def _cmbs_fully_loss(out, batch, opts):
    is_event_logits, event_scores, av_gate, av_score = out
    is_event, video_class = segment_targets(batch["labels"])
    target = is_event.to(event_scores.dtype)
    # av_gate is already sigmoid * sigmoid; the original still feeds it to BCE-with-logits
    return (F.binary_cross_entropy_with_logits(is_event_logits.squeeze(-1).transpose(0, 1), target)
            + F.binary_cross_entropy_with_logits(av_gate.squeeze(-1).transpose(0, 1), target)
            + F.cross_entropy(av_score, video_class) + F.cross_entropy(event_scores, video_class))


def _cmbs_fully_predict(out, opts):
    return threshold_rule(out[0].squeeze(-1).transpose(0, 1), out[1], out[1].shape[-1])


def _cmbs_weak_loss(out, batch, opts):
    return F.multilabel_soft_margin_loss(out[2], batch["video_labels"].to(out[2].dtype))


def _cmbs_weak_predict(out, opts):
    """Default: av_gate (a probability) > 0.5 -> argmax of the 29 raw logits, else background.
    `cmbs_weak_double_sigmoid=True` reproduces the original, which applies sigmoid to av_gate
    again, so every segment gets the video-level argmax (bg included)."""
    av_gate, raw, _ = out
    background = raw.shape[-1] - 1
    if opts.get("cmbs_weak_double_sigmoid", False):
        return threshold_rule(av_gate, raw, background)
    return threshold_rule(av_gate, raw, background, already_probability=True)


# CMM
def _cmm_forward(model, batch):
    return model(batch["video_vec"], batch["audio"])


def _cmm_loss(out, batch, opts):
    return contrastive_loss(out, batch["match"], opts.get("margin", 2.0))


def _cmm_predict(out, opts):
    """Per-segment match decision (distance < 0.5, as the training script's accuracy)."""
    return (out < 0.5).long()


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("eccv18-fully", _av, _eccv18_fully_loss, _argmax_segments),
    Objective("eccv18-weakly", _av, _eccv18_weak_loss, _eccv18_weak_predict),
    Objective("cpsp-fully", _av, _cpsp_fully_loss, _cpsp_fully_predict),
    Objective("cpsp-weakly", _av, _cpsp_weak_loss, _cpsp_weak_predict),
    Objective("cmbs-fully", _av, _cmbs_fully_loss, _cmbs_fully_predict),
    Objective("cmbs-weakly", _av, _cmbs_weak_loss, _cmbs_weak_predict),
    Objective("cmm", _cmm_forward, _cmm_loss, _cmm_predict),
)}
