"""AVSDN (Lin et al., ICASSP 2019) as re-implemented in the CPSP repository: ECCV18 attention,
a seq2seq of BiLSTMs whose encoder final states are fused by a 128-d DMRN block and seed the
decoder BiLSTM over concat(audio, attended visual), then CPSP heads.

As in that code the visual encoder reads the *attended* features (both seq2seq visual
arguments are the attended stream)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init

from models.baselines.cpsp_heads import apply_heads, build_heads
from models.baselines.eccv18_attention import AudioGuidedAttentionBase, dmrn_fusion, residual_mlp


class AVSDN(AudioGuidedAttentionBase):
    def __init__(self, vis_fea_type: str = "vgg", flag: str = "fully", hidden_dim: int = 128,
                 hidden_size: int = 512, nb_block: int = 1, category_num: int = 28,
                 pooling_type: str = "avg") -> None:
        super().__init__()
        if vis_fea_type != "vgg":
            # the original hard-codes 512 in two reshapes, so only VGG features run there
            raise ValueError("AVSDN supports vis_fea_type='vgg' only (as the original)")
        self.v_init_dim = 512
        self.flag, self.pooling_type, self.hidden_dim = flag, pooling_type, hidden_dim
        self.lstm_audio = nn.LSTM(128, hidden_dim, 1, batch_first=True, bidirectional=True)
        self.lstm_video = nn.LSTM(self.v_init_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self.lstm_a_v = nn.LSTM(self.v_init_dim + 128, hidden_dim, 1, batch_first=True, bidirectional=True)
        self._build_attention(self.v_init_dim, hidden_size)
        build_heads(self, 2 * hidden_dim, category_num)
        self.U_v = residual_mlp(hidden_dim)
        self.U_a = residual_mlp(hidden_dim)
        self._xavier_attention()
        init.xavier_uniform_(self.category_classifier[0].weight)
        init.xavier_uniform_(self.event_classifier[0].weight)

    def seq2seq(self, audio: torch.Tensor, video_ori: torch.Tensor, video_att: torch.Tensor) -> torch.Tensor:
        _, (h_v, c_v) = self.lstm_video(video_ori)
        _, (h_a, c_a) = self.lstm_audio(audio)
        mix_h = dmrn_fusion(self.U_a, self.U_v, F.relu(h_a), F.relu(h_v), 1)
        mix_c = dmrn_fusion(self.U_a, self.U_v, F.relu(c_a), F.relu(c_v), 1)
        out, _ = self.lstm_a_v(torch.cat((audio, video_att), -1), (mix_h.contiguous(), mix_c.contiguous()))
        return out

    def forward(self, video: torch.Tensor, audio: torch.Tensor):
        attended = self.attend(audio, video)
        fusion = F.relu(self.seq2seq(audio, attended, attended))
        return apply_heads(self, fusion, self.flag, self.pooling_type)


def avsdn(**kw) -> AVSDN:
    return AVSDN(**kw)
