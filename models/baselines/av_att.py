"""AV_att ("A+V-att", ECCV18 `att_Net`) and its weakly supervised twin W-A+V-att.

Both end in a softmax and are trained with MultiLabelSoftMarginLoss on those probabilities
(sigmoid of softmax): kept, since it is what produced the published numbers."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init

from models.baselines.eccv18_attention import AudioGuidedAttentionBase


class AVAtt(AudioGuidedAttentionBase):
    """Audio-guided attention, two BiLSTMs, concat, two-layer head, softmax over 29."""

    def __init__(self, embedding_dim: int = 128, hidden_dim: int = 128, hidden_size: int = 512,
                 tagset_size: int = 29, visual_dim: int = 512) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.lstm_audio = nn.LSTM(embedding_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self.lstm_video = nn.LSTM(visual_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self._build_attention(visual_dim, hidden_size, embedding_dim)
        self.L1 = nn.Linear(hidden_dim * 4, 64)
        self.L2 = nn.Linear(64, tagset_size)
        self._xavier_attention()
        init.xavier_uniform_(self.L1.weight)
        init.xavier_uniform_(self.L2.weight)

    def segment_scores(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        attended = self.attend(audio, video)
        h_a, _ = self.lstm_audio(audio)
        h_v, _ = self.lstm_video(attended)
        out = F.relu(torch.cat((h_a, h_v), -1))
        return self.L2(F.relu(self.L1(out)))

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """-> per-segment class probabilities [B,T,29]."""
        return F.softmax(self.segment_scores(audio, video), dim=-1)


class AVAttWeak(AVAtt):
    """W-A+V-att: same layers; the video-level prediction is a softmax over the max-pooled
    segment scores."""

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (video probabilities [B,29], segment scores (logits) [B,T,29])."""
        score = self.segment_scores(audio, video)
        return F.softmax(score.max(dim=1).values, dim=-1), score


def av_att(**kw) -> AVAtt:
    return AVAtt(**kw)


def av_att_weak(**kw) -> AVAttWeak:
    return AVAttWeak(**kw)
