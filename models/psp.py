"""The PSP-repo (CVPR 2021) networks for AVE: `fully_model.psp_net` and `weakly_model.psp_net`.

Same layers, names, initialisation and forward signature `(audio, video, thr)` as the
originals, returning the same tuples, so the authors' loops could drive them unchanged.
Layers the original creates but never uses (`linear_v`, `v_classify`, `a_classify`, `L3`,
`L4` in fully; `temperature`, `W1`, `W2` in weakly) exist too, so that the released
checkpoints load with strict=True.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from models.psp_blocks import AVGA, LSTM_A_V, PSP, Classify, av_similarity, two_linear

FULLY_THRESHOLD = 0.099
WEAKLY_THRESHOLD = 0.095


class PSPFully(nn.Module):
    """fully_model.psp_net: fa → AVGA → fv → Bi-LSTMs → PSP → L1/ReLU/L2 per segment."""

    def __init__(self, a_dim: int = 128, v_dim: int = 512, hidden_dim: int = 128,
                 category_num: int = 29, thr_val: float = FULLY_THRESHOLD) -> None:
        super().__init__()
        self.thr_val = thr_val
        self.fa = two_linear(a_dim)
        self.fv = two_linear(v_dim)
        self.linear_v = nn.Linear(v_dim, a_dim)
        self.relu = nn.ReLU()
        self.attention = AVGA(v_dim=v_dim)
        self.lstm_a_v = LSTM_A_V(a_dim=a_dim, v_dim=hidden_dim, hidden_dim=hidden_dim)
        self.psp = PSP(a_dim=a_dim * 2, v_dim=hidden_dim * 2)
        self.v_classify = Classify(hidden_dim=256)
        self.a_classify = Classify(hidden_dim=256)
        self.L1 = nn.Linear(2 * hidden_dim, 64, bias=False)
        self.L2 = nn.Linear(64, category_num, bias=False)
        self.L3 = nn.Linear(256, 64)
        self.L4 = nn.Linear(64, 2)
        for layer in (self.L1, self.L2, self.L3, self.L4):
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, audio: Tensor, video: Tensor, thr_val: float | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (fusion [B,T,256], out [B,T,C+1] logits, cross_att [B,T])."""
        thr = self.thr_val if thr_val is None else thr_val
        fa_fea = self.fa(audio)
        video_t = self.fv(self.attention(fa_fea, video))
        lstm_audio, lstm_video = self.lstm_a_v(fa_fea, video_t)
        fusion, v_psp, a_psp = self.psp(lstm_audio, lstm_video, thr_val=thr)
        cross_att = av_similarity(v_psp, a_psp)
        out = self.L2(self.relu(self.L1(fusion)))
        return fusion, out, cross_att


class PSPWeakly(nn.Module):
    """weakly_model.psp_net: raw audio → AVGA → linear_v → Bi-LSTMs → weak PSP (no
    renormalisation, no fc) → per-segment scores gated by sigmoid(ReLU(W3·score))."""

    def __init__(self, a_dim: int = 128, v_dim: int = 512, hidden_dim: int = 128,
                 category_num: int = 29, thr_val: float = WEAKLY_THRESHOLD) -> None:
        super().__init__()
        self.thr_val = thr_val
        self.temperature = nn.Parameter(torch.ones(1, category_num))
        self.linear_v = nn.Linear(v_dim, a_dim)
        self.relu = nn.ReLU()
        self.attention = AVGA(a_dim=128, v_dim=512)  # hard-coded sizes in the original
        self.lstm_a_v = LSTM_A_V(a_dim=a_dim, v_dim=hidden_dim, hidden_dim=hidden_dim)
        self.psp = PSP(a_dim=a_dim * 2, v_dim=hidden_dim * 2, renormalize=False, with_fc=False)
        self.W1 = nn.Linear(2 * hidden_dim, 1, bias=False)
        self.W2 = nn.Linear(64, 1, bias=False)
        self.W3 = nn.Linear(category_num, 1, bias=False)  # 29 hard-coded upstream
        self.L1 = nn.Linear(2 * hidden_dim, 64, bias=False)
        self.L2 = nn.Linear(64, category_num, bias=False)
        nn.init.xavier_uniform_(self.L1.weight)
        nn.init.xavier_uniform_(self.L2.weight)

    def forward(self, audio: Tensor, video: Tensor, thr_val: float | None = None
                ) -> tuple[Tensor, Tensor]:
        """Returns (out_avg [B,C+1] softmax of the time-averaged scores, score [B,T,C+1])."""
        thr = self.thr_val if thr_val is None else thr_val
        video_t = self.linear_v(self.attention(audio, video))
        lstm_audio, lstm_video = self.lstm_a_v(audio, video_t)
        fusion, _, _ = self.psp(lstm_audio, lstm_video, thr)
        score = self.L2(self.relu(self.L1(fusion)))
        weight = torch.sigmoid(self.relu(self.W3(score)))  # >= 0.5 always (sigmoid of ReLU)
        score = score * weight.expand_as(score)
        out_avg = F.softmax(score.mean(dim=1), dim=-1)
        return out_avg, score


def psp_fully(category_num: int = 29, **kw: object) -> PSPFully:
    return PSPFully(category_num=category_num, **kw)  # type: ignore[arg-type]


def psp_weakly(category_num: int = 29, **kw: object) -> PSPWeakly:
    return PSPWeakly(category_num=category_num, **kw)  # type: ignore[arg-type]
