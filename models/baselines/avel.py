"""AVEL as the CPSP repository re-implements it (its `TBMRF_Net`): DMRN's attention, BiLSTMs
and residual fusion, a ReLU on the fused feature, CPSP heads instead of the softmax layer,
no Xavier init. Used as the "AVEL" row of the PSP/CPSP tables."""

from __future__ import annotations

import torch
import torch.nn as nn

from models.baselines.cpsp_heads import apply_heads, build_heads
from models.baselines.eccv18_attention import AudioGuidedAttentionBase, dmrn_fusion, residual_mlp


class AVEL(AudioGuidedAttentionBase):
    def __init__(self, vis_fea_type: str = "vgg", flag: str = "fully", hidden_dim: int = 128,
                 hidden_size: int = 512, nb_block: int = 1, category_num: int = 28,
                 pooling_type: str = "avg", channels_first: bool = False) -> None:
        """channels_first: the CPSP code receives [B,T,D,7,7] and permutes; AVE exports here
        are channels last [B,T,7,7,D], so that is the default."""
        super().__init__()
        self.v_init_dim = 512 if vis_fea_type == "vgg" else 1024
        self.flag, self.pooling_type, self.channels_first = flag, pooling_type, channels_first
        self.hidden_dim, self.nb_block = hidden_dim, nb_block
        self.lstm_audio = nn.LSTM(128, hidden_dim, 1, batch_first=True, bidirectional=True)
        self.lstm_video = nn.LSTM(self.v_init_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self._build_attention(self.v_init_dim, hidden_size)
        self.U_v = residual_mlp(hidden_dim * 2)
        self.U_a = residual_mlp(hidden_dim * 2)
        build_heads(self, 2 * hidden_dim, category_num)

    def forward(self, video: torch.Tensor, audio: torch.Tensor):
        if self.channels_first:
            video = video.permute(0, 1, 3, 4, 2)
        attended = self.attend(audio, video)
        h_a, _ = self.lstm_audio(audio)
        h_v, _ = self.lstm_video(attended)
        fusion = torch.relu(dmrn_fusion(self.U_a, self.U_v, h_a, h_v, self.nb_block))
        return apply_heads(self, fusion, self.flag, self.pooling_type)


def avel(**kw) -> AVEL:
    return AVEL(**kw)
