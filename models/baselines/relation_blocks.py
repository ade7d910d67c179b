"""Transformer-style blocks shared by CMRAN and CMBS (sequence-first tensors [T,B,D]).

Names mirror the originals so their state dicts load: each relation module keeps the layer
it was cloned from (`encoder_layer` / `decoder_layer`) as a registered but unused submodule,
and the decoder layer owns a `self_attn` it never calls. Their parameters count in
`parameters()` exactly as they do in the released models."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class EncoderLayer(nn.Module):
    """Post-norm self-attention + ReLU feed-forward."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        src = self.norm1(src + self.dropout1(self.self_attn(src, src, src)[0]))
        return self.norm2(src + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(src))))))


class DecoderLayer(nn.Module):
    """Cross-modal relation attention: the query attends over [other modality; itself]."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)  # unused, as in the original
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        memory = torch.cat([memory, tgt], dim=0)
        tgt = self.norm1(tgt + self.dropout1(self.multihead_attn(tgt, memory, memory)[0]))
        return self.norm2(tgt + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(tgt))))))


class Encoder(nn.Module):
    def __init__(self, layer: nn.Module, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            src = layer(src)
        return src


class Decoder(nn.Module):
    def __init__(self, layer: nn.Module, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            tgt = layer(tgt, memory)
        return tgt


class InternalTemporalRelationModule(nn.Module):
    """Linear(input_dim -> d_model) then two self-attention encoder layers."""

    def __init__(self, input_dim: int, d_model: int, feedforward_dim: int = 2048) -> None:
        super().__init__()
        self.encoder_layer = EncoderLayer(d_model, nhead=4, dim_feedforward=feedforward_dim)
        self.encoder = Encoder(self.encoder_layer, num_layers=2)
        self.affine_matrix = nn.Linear(input_dim, d_model)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.affine_matrix(feature))


class CrossModalRelationAttModule(nn.Module):
    """Linear(input_dim -> d_model) then one cross-modal relation decoder layer."""

    def __init__(self, input_dim: int, d_model: int, feedforward_dim: int = 2048) -> None:
        super().__init__()
        self.decoder_layer = DecoderLayer(d_model, nhead=4, dim_feedforward=feedforward_dim)
        self.decoder = Decoder(self.decoder_layer, num_layers=1)
        self.affine_matrix = nn.Linear(input_dim, d_model)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.affine_matrix(query), memory)


class AudioVideoInter(nn.Module):
    """g = v * a attends over [a; v]; residual + LayerNorm."""

    def __init__(self, d_model: int, n_head: int, head_dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.1)
        self.video_multihead = nn.MultiheadAttention(d_model, num_heads=n_head, dropout=head_dropout)
        self.norm1 = nn.LayerNorm(d_model)

    def forward(self, video_feat: torch.Tensor, audio_feat: torch.Tensor) -> torch.Tensor:
        g = video_feat * audio_feat
        memory = torch.cat([audio_feat, video_feat], dim=0)
        return self.norm1(g + self.dropout(self.video_multihead(g, memory, memory)[0]))


class SupvLocalizeModule(nn.Module):
    """Per-segment event logit [T,B,1] and class logits of the max-over-time feature [B,C]."""

    def __init__(self, d_model: int, category_num: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(d_model, 1)
        self.event_classifier = nn.Linear(d_model, category_num)

    def forward(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = fused.transpose(1, 0).max(1).values
        return self.classifier(fused), self.event_classifier(pooled)


def topk_mean_over_time(scores: torch.Tensor, k: int = 4) -> torch.Tensor:
    """[B,T,C] -> per-class mean of the k highest segment scores [B,C]."""
    return scores.sort(descending=True, dim=1).values[:, :k, :].mean(dim=1)
