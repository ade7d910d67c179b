"""HAN (hybrid attention network) with attentive MMIL pooling — `MMIL_Net` of AVVP-ECCV20.

Audio-visual video parsing on LLP (Tian, Li, Xu, ECCV 2020). Parameter names and the
order in which modules are built follow the official `nets/net_audiovisual.py`, so the
released `MMIL_Net.pt` state_dict loads into `HAN` unchanged and a seeded build draws its
initial weights in the same order. Faithful details (see shared spec avvp.md §3):

- ONE hybrid-attention layer whose weights are shared by both modalities; audio and visual
  are both updated from the un-updated inputs; the wrapper's own norm1/norm2 are never used;
- the 2D frame features [B, 80, 2048] are projected by `fc_v` first and THEN averaged over
  groups of 8 frames; 2D (first) and 3D (second) are concatenated and fused;
- `audio_encoder`, `visual_encoder` and `cmt_encoder` exist (and are in the checkpoint) but
  forward never calls them; `with_unused=False` leaves them out.

`forward(audio, visual_2d, visual_3d)` returns (global_prob, a_prob, v_prob, frame_prob)
with shapes [B,25], [B,25], [B,25], [B,10,2,25], in that order.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

N_CLASSES = 25
D_MODEL = 512
FRAMES_PER_SEGMENT = 8


class HANLayer(nn.Module):
    """Post-norm layer: q + cross-attention(q, other) + self-attention(q), LayerNorm, FFN, LayerNorm."""

    def __init__(self, d_model: int = D_MODEL, nhead: int = 1, dim_feedforward: int = 512,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.cm_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout11 = nn.Dropout(dropout)
        self.dropout12 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src_q: torch.Tensor, src_other: torch.Tensor) -> torch.Tensor:
        # nn.MultiheadAttention is sequence-first here, as in the original.
        q = src_q.permute(1, 0, 2)
        other = src_other.permute(1, 0, 2)
        cross = self.cm_attn(q, other, other, need_weights=False)[0]
        own = self.self_attn(q, q, q, need_weights=False)[0]
        q = self.norm1(q + self.dropout11(cross) + self.dropout12(own))
        q = self.norm2(q + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(q))))))
        return q.permute(1, 0, 2)


class CMTLayer(nn.Module):
    """Cross-modal transformer layer. Built (it is in the checkpoint) but unused by HAN."""

    def __init__(self, d_model: int = D_MODEL, nhead: int = 1, dim_feedforward: int = 512,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src_q: torch.Tensor, src_other: torch.Tensor) -> torch.Tensor:
        attended = self.self_attn(src_q, src_other, src_other, need_weights=False)[0]
        q = self.norm1(src_q + self.dropout1(attended))
        return self.norm2(q + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(q))))))


class PairEncoder(nn.Module):
    """The original `Encoder`: runs one layer in both directions on the ORIGINAL inputs.

    With several layers the original still feeds the un-updated inputs to every layer (only
    the last layer's output survives); kept. norm1/norm2 exist for the state_dict only.
    """

    def __init__(self, layer: nn.Module, num_layers: int = 1) -> None:
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm1 = nn.LayerNorm(D_MODEL)
        self.norm2 = nn.LayerNorm(D_MODEL)

    def forward(self, src_a: torch.Tensor, src_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_a, out_v = src_a, src_v
        for layer in self.layers:
            out_a = layer(src_a, src_v)
            out_v = layer(src_v, src_a)
        return out_a, out_v


def _unused_transformer() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model=D_MODEL, nhead=1, dim_feedforward=512)
    return nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)


def fuse_visual(fc_v: nn.Linear, fc_st: nn.Linear, fc_fusion: nn.Linear,
                visual_2d: torch.Tensor, visual_3d: torch.Tensor) -> torch.Tensor:
    """[B, 80, 2048] + [B, 10, 512] → [B, 10, 512]: project 2D, average each 8 frames, fuse."""
    b, n_frames, _ = visual_2d.shape
    if n_frames % FRAMES_PER_SEGMENT:
        raise ValueError(f"2D features need a multiple of {FRAMES_PER_SEGMENT} frames, got {n_frames}")
    projected = fc_v(visual_2d)
    # Same as avg_pool2d with kernel (8, 1) over time in the original.
    per_segment = projected.reshape(b, n_frames // FRAMES_PER_SEGMENT, FRAMES_PER_SEGMENT, -1).mean(2)
    return fc_fusion(torch.cat((per_segment, fc_st(visual_3d)), dim=-1))


def mmil_pooling(x: torch.Tensor, fc_prob: nn.Linear, fc_frame_att: nn.Linear,
                 fc_av_att: nn.Linear) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Attentive MMIL pooling of x [B, T, 2, D] → (global, audio, visual, frame) probabilities."""
    frame_prob = torch.sigmoid(fc_prob(x))
    frame_att = torch.softmax(fc_frame_att(x), dim=1)
    av_att = torch.softmax(fc_av_att(x), dim=2)
    temporal_prob = frame_att * frame_prob
    global_prob = (temporal_prob * av_att).sum(dim=2).sum(dim=1)
    a_prob = temporal_prob[:, :, 0, :].sum(dim=1)
    v_prob = temporal_prob[:, :, 1, :].sum(dim=1)
    return global_prob, a_prob, v_prob, frame_prob


class HAN(nn.Module):
    """MMIL_Net. Inputs audio [B,10,128], visual_2d [B,80,2048], visual_3d [B,10,512]."""

    def __init__(self, n_classes: int = N_CLASSES, with_unused: bool = True) -> None:
        super().__init__()
        # Construction order = the original's (it decides seeded initial weights).
        self.fc_prob = nn.Linear(D_MODEL, n_classes)
        self.fc_frame_att = nn.Linear(D_MODEL, n_classes)
        self.fc_av_att = nn.Linear(D_MODEL, n_classes)
        self.fc_a = nn.Linear(128, D_MODEL)
        self.fc_v = nn.Linear(2048, D_MODEL)
        self.fc_st = nn.Linear(512, D_MODEL)
        self.fc_fusion = nn.Linear(2 * D_MODEL, D_MODEL)
        self.with_unused = with_unused
        if with_unused:
            self.audio_encoder = _unused_transformer()
            self.visual_encoder = _unused_transformer()
            self.cmt_encoder = PairEncoder(CMTLayer(), num_layers=1)
        self.hat_encoder = PairEncoder(HANLayer(), num_layers=1)

    def forward(self, audio: torch.Tensor, visual_2d: torch.Tensor, visual_3d: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x1 = self.fc_a(audio)
        x2 = fuse_visual(self.fc_v, self.fc_st, self.fc_fusion, visual_2d, visual_3d)
        x1, x2 = self.hat_encoder(x1, x2)
        x = torch.stack([x1, x2], dim=-2)
        return mmil_pooling(x, self.fc_prob, self.fc_frame_att, self.fc_av_att)


# The original's modality-aware "label smoothing": audio target = y, visual target = 0.9y+0.05.
AUDIO_SMOOTHING = 1.0
VISUAL_SMOOTHING = 0.9
PROB_EPS = 1e-7


def smoothed_targets(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pa = AUDIO_SMOOTHING * target + (1 - AUDIO_SMOOTHING) * 0.5
    pv = VISUAL_SMOOTHING * target + (1 - VISUAL_SMOOTHING) * 0.5
    return pa, pv


def mmil_loss_terms(global_prob: torch.Tensor, a_prob: torch.Tensor, v_prob: torch.Tensor,
                    target: torch.Tensor) -> dict[str, torch.Tensor]:
    """BCE(a_prob, Pa), BCE(v_prob, Pv), BCE(global_prob, y), with probabilities clamped to
    [1e-7, 1-1e-7] first (the original clamps in place; the gradient is the same)."""
    target = target.to(global_prob.dtype)
    pa, pv = smoothed_targets(target)
    lo, hi = PROB_EPS, 1 - PROB_EPS
    return {"audio": F.binary_cross_entropy(a_prob.clamp(lo, hi), pa),
            "visual": F.binary_cross_entropy(v_prob.clamp(lo, hi), pv),
            "global": F.binary_cross_entropy(global_prob.clamp(lo, hi), target)}


def build_han(**kwargs) -> HAN:
    return HAN(**kwargs)
