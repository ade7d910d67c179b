"""DMRN (ECCV18 `TBMRF_Net`): AV_att's attention and BiLSTMs, fused by one dual multimodal
residual block, then Linear 256->29 and softmax."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init

from models.baselines.eccv18_attention import AudioGuidedAttentionBase, dmrn_fusion, residual_mlp


class DMRN(AudioGuidedAttentionBase):
    def __init__(self, embedding_dim: int = 128, hidden_dim: int = 128, hidden_size: int = 512,
                 tagset_size: int = 29, nb_block: int = 1, visual_dim: int = 512) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.nb_block = nb_block
        self.lstm_audio = nn.LSTM(embedding_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self.lstm_video = nn.LSTM(visual_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self._build_attention(visual_dim, hidden_size, embedding_dim)
        self.U_v = residual_mlp(hidden_dim * 2)
        self.U_a = residual_mlp(hidden_dim * 2)
        self.L2 = nn.Linear(hidden_dim * 2, tagset_size)
        init.xavier_uniform_(self.L2.weight)  # the original initialises only L2

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """-> per-segment class probabilities [B,T,29]."""
        attended = self.attend(audio, video)
        h_a, _ = self.lstm_audio(audio)
        h_v, _ = self.lstm_video(attended)
        fused = dmrn_fusion(self.U_a, self.U_v, h_a, h_v, self.nb_block)
        return F.softmax(self.L2(fused), dim=-1)


def dmrn(**kw) -> DMRN:
    return DMRN(**kw)
