"""The layers PSP and CPSP share: audio-guided visual attention, the twin Bi-LSTMs, the
positive-sample-propagation module and the per-segment audio-visual cosine.

Attribute names equal the official ones (`affine_audio`, `lstm_a_v.lstm_video`, `psp.v_L1`,
...) so the authors' state_dicts load one-to-one. Unlike the originals nothing here calls
`.cuda()` or assumes a dtype: hidden states and masks follow the input's device and dtype,
so the same module runs in float32 or (as the CPSP code does) float64.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class AVGA(nn.Module):
    """Audio-guided visual attention (from AVEL): weights the 49 spatial cells of each
    segment's visual map by a score driven by the audio, and returns the weighted sum of the
    *raw* visual features."""

    def __init__(self, a_dim: int = 128, v_dim: int = 512, hidden_size: int = 512,
                 map_size: int = 49) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.affine_audio = nn.Linear(a_dim, hidden_size)
        self.affine_video = nn.Linear(v_dim, hidden_size)
        self.affine_v = nn.Linear(hidden_size, map_size, bias=False)
        self.affine_g = nn.Linear(hidden_size, map_size, bias=False)
        self.affine_h = nn.Linear(map_size, 1, bias=False)
        for layer in (self.affine_v, self.affine_g, self.affine_h, self.affine_audio,
                      self.affine_video):
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, audio: Tensor, video: Tensor) -> Tensor:
        # audio [B,T,a], video [B,T,7,7,Dv] -> [B,T,Dv]
        v_dim = video.size(-1)
        raw = video.reshape(video.size(0) * video.size(1), -1, v_dim)  # [BT,49,Dv]
        v_t = self.relu(self.affine_video(raw))
        a_t = self.relu(self.affine_audio(audio.reshape(-1, audio.size(-1))))  # [BT,512]
        # The audio term is [BT,49,1]: it is added along the last axis (per spatial row),
        # exactly as the original's unsqueeze(2) does; not a per-location bias.
        content = self.affine_v(v_t) + self.affine_g(a_t).unsqueeze(2)
        z_t = self.affine_h(torch.tanh(content)).squeeze(2)  # [BT,49]
        alpha = F.softmax(z_t, dim=-1).unsqueeze(1)  # [BT,1,49]
        attended = torch.bmm(alpha, raw).reshape(-1, v_dim)
        return attended.reshape(video.size(0), -1, v_dim)


class LSTM_A_V(nn.Module):  # noqa: N801  (official name, kept for state_dict parity)
    """Two separate single-layer Bi-LSTMs (audio, video). The initial state is zeros of width
    `a_dim` as in the original, which only works because a_dim equals the hidden size."""

    def __init__(self, a_dim: int, v_dim: int, hidden_dim: int = 128) -> None:
        super().__init__()
        self.lstm_audio = nn.LSTM(a_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self.lstm_video = nn.LSTM(v_dim, hidden_dim, 1, batch_first=True, bidirectional=True)

    def forward(self, a_fea: Tensor, v_fea: Tensor) -> tuple[Tensor, Tensor]:
        bs, _, a_dim = a_fea.shape
        zeros = a_fea.new_zeros(2, bs, a_dim)
        lstm_audio, _ = self.lstm_audio(a_fea, (zeros, zeros))
        lstm_video, _ = self.lstm_video(v_fea, (zeros, zeros))
        return lstm_audio, lstm_video


class PSP(nn.Module):
    """Positive sample propagation between the two LSTM streams.

    `renormalize` and `with_fc` are True for every fully model and for the CPSP-repo weakly
    model; the PSP-repo weakly model has neither (no second L1 normalisation after pruning,
    and no `v_fc`/`a_fc` layers at all).
    """

    def __init__(self, a_dim: int = 256, v_dim: int = 256, hidden_dim: int = 256,
                 out_dim: int = 256, renormalize: bool = True, with_fc: bool = True) -> None:
        super().__init__()
        self.renormalize = renormalize
        self.with_fc = with_fc
        self.v_L1 = nn.Linear(v_dim, hidden_dim, bias=False)
        self.v_L2 = nn.Linear(v_dim, hidden_dim, bias=False)
        if with_fc:
            self.v_fc = nn.Linear(v_dim, out_dim, bias=False)
        self.a_L1 = nn.Linear(a_dim, hidden_dim, bias=False)
        self.a_L2 = nn.Linear(a_dim, hidden_dim, bias=False)
        if with_fc:
            self.a_fc = nn.Linear(a_dim, out_dim, bias=False)
        self.activation = nn.ReLU()
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p=0.1)
        self.layer_norm = nn.LayerNorm(out_dim, eps=1e-6)
        layers = [self.v_L1, self.v_L2, self.a_L1, self.a_L2]
        if with_fc:
            layers += [self.a_fc, self.v_fc]
        for layer in layers:
            nn.init.xavier_uniform_(layer.weight)

    def _prune(self, beta: Tensor, thr: float) -> Tensor:
        beta = beta / (beta.sum(dim=-1, keepdim=True) + 1e-8)
        gamma = (beta > thr).to(beta.dtype) * beta  # strict '>' as in the original
        if self.renormalize:
            gamma = gamma / (gamma.sum(dim=-1, keepdim=True) + 1e-8)
        return gamma

    def forward(self, a_fea: Tensor, v_fea: Tensor, thr_val: float) -> tuple[Tensor, Tensor, Tensor]:
        v_branch1 = self.dropout(self.activation(self.v_L1(v_fea)))
        v_branch2 = self.dropout(self.activation(self.v_L2(v_fea)))
        a_branch1 = self.dropout(self.activation(self.a_L1(a_fea)))
        a_branch2 = self.dropout(self.activation(self.a_L2(a_fea)))

        beta_va = torch.bmm(v_branch2, a_branch1.transpose(1, 2)) / (v_branch2.shape[2] ** 0.5)
        beta_va = F.relu(beta_va)  # rows: visual segments, columns: audio segments
        beta_av = beta_va.transpose(1, 2)
        gamma_va = self._prune(beta_va, thr_val)
        gamma_av = self._prune(beta_av, thr_val)

        v_psp = v_fea + torch.bmm(gamma_va, a_branch2)
        a_psp = a_fea + torch.bmm(gamma_av, v_branch1)
        if self.with_fc:
            v_psp = self.dropout(self.relu(self.v_fc(v_psp)))
            a_psp = self.dropout(self.relu(self.a_fc(a_psp)))
        v_psp = self.layer_norm(v_psp)
        a_psp = self.layer_norm(a_psp)
        return (v_psp + a_psp) * 0.5, v_psp, a_psp


class Classify(nn.Module):
    """Unused in every forward; kept because the official state_dicts contain it."""

    def __init__(self, hidden_dim: int = 256, category_num: int = 28) -> None:
        super().__init__()
        self.L1 = nn.Linear(hidden_dim, 64, bias=False)
        self.L2 = nn.Linear(64, category_num, bias=False)
        nn.init.xavier_uniform_(self.L1.weight)
        nn.init.xavier_uniform_(self.L2.weight)

    def forward(self, feature: Tensor) -> Tensor:
        return self.L2(F.relu(self.L1(feature)))


def av_similarity(v_fea: Tensor, a_fea: Tensor) -> Tensor:
    """Per-segment cosine of the two PSP outputs, [B,T] (the AVPS score)."""
    return (F.normalize(v_fea, dim=-1) * F.normalize(a_fea, dim=-1)).sum(dim=-1)


def two_linear(in_dim: int, mid: int = 256, out: int = 128) -> nn.Sequential:
    """`fa`/`fv`: two bias-free linear layers with no activation between them (as coded)."""
    return nn.Sequential(nn.Linear(in_dim, mid, bias=False), nn.Linear(mid, out, bias=False))
