"""The output heads the CPSP repository puts on its AVEL and AVSDN re-implementations:
a per-segment event/background logit and a video-level category logit from the temporal
pooled feature. In the weak setting the two are multiplied (sigmoid(event) * category) and
max-pooled over time into a video prediction."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def build_heads(module: nn.Module, dim: int, category_num: int) -> None:
    """Adds `event_classifier` and `category_classifier` (names as in the CPSP checkpoints)."""
    module.event_classifier = nn.Sequential(nn.Linear(dim, 1))
    module.category_classifier = nn.Sequential(nn.Linear(dim, category_num))


def apply_heads(module: nn.Module, fusion: torch.Tensor, flag: str, pooling_type: str = "avg"):
    """fully -> (event_logits [B,T], category_logits [B,C], None, fusion);
    weakly -> (fusion, event_logits [B,T], category_logits [B,C], video_probs [B,C])."""
    if flag == "fully":
        event_logits = module.event_classifier(fusion).squeeze(-1)
        category_logits = module.category_classifier(fusion.mean(dim=1))
        return event_logits, category_logits, None, fusion
    if flag == "weakly":
        event_logits = module.event_classifier(fusion)  # [B,T,1]
        pooled = fusion.mean(1) if pooling_type == "avg" else fusion.max(1).values
        category_logits = module.category_classifier(pooled)[:, None, :]  # [B,1,C]
        fused = event_logits.sigmoid() * category_logits
        video_probs = F.softmax(fused.max(dim=1).values, dim=-1)
        return fusion, event_logits.squeeze(-1), category_logits.squeeze(1), video_probs
    raise ValueError(f"flag must be 'fully' or 'weakly', got {flag!r}")
