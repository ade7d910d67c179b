"""PSP / CPSP for audio-visual video parsing — `PSP_MMIL_Net` of the CPSP repo's `cpsp_avvp`.

Same inputs, visual fusion and attentive MMIL pooling as HAN (`models.han`), but the hybrid
attention is replaced by a Bi-LSTM per modality (512 → 2x256) followed by positive sample
propagation (PSP, hidden 512, pruning threshold 0.090). Training adds two terms to the three
BCE terms of HAN:

- similarity: per video, cosine similarities between each PSP audio segment and each fused
  visual segment (BEFORE the LSTM), divided by 0.2, are classified into the segment's own
  index by a label-smoothed cross-entropy (smoothing 0.1 over 10 "classes");
- video contrastive (CPSP only, `vcon`): InfoNCE-style over the batch on the mean of the
  [B,10,2,512] features, positives = videos sharing >= ratio (0.9) of a video's labels,
  negatives = no shared label, temperature eta 0.2, weight lambda_v 1.0; a NaN value (e.g. a
  batch without any negative) is skipped, as in the original.

Kept from the original: the sqrt(512) scaling of PSP similarities, ReLU, row-L1 norm, the
strict `>` threshold and renormalisation, dropout 0.1 inside PSP, the shared LayerNorm
(eps 1e-6), zero initial LSTM states. Evaluation of this model gates the audio frames by
`a_prob >= 0.5` and visual frames by `v_prob >= 0.5` (not by `global_prob` as HAN does).

Note: the repo's `run.sh` misses a line continuation after `--mode retrain`, so running it
literally trains with the argparse defaults (threshold 0.099, no vcon); we take the values the
script spells out (0.090, vcon, ratio 0.9, eta 0.2, lambda 1.0) as intended.

`forward` returns the original's 7-tuple
(x [B,10,2,512], global_prob, a_prob, v_prob, frame_prob [B,10,2,25], sims [B*10,10], mask [B*10]).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.han import D_MODEL, N_CLASSES, fuse_visual, mmil_pooling

THRESHOLD = 0.090
SIM_TEMPERATURE = 0.2
SIM_SMOOTHING = 0.1
VCON_RATIO = 0.9
VCON_ETA = 0.2


class BiLSTMPair(nn.Module):
    """`LSTM_A_V`: one bidirectional LSTM per modality, zero initial state."""

    def __init__(self, a_dim: int, v_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.lstm_audio = nn.LSTM(a_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self.lstm_video = nn.LSTM(v_dim, hidden_dim, 1, batch_first=True, bidirectional=True)
        self.hidden_dim = hidden_dim

    def forward(self, a_fea: torch.Tensor, v_fea: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # No explicit (h0, c0): PyTorch's default is zeros on the input's device and dtype.
        return self.lstm_audio(a_fea)[0], self.lstm_video(v_fea)[0]


class PositiveSamplePropagation(nn.Module):
    """`PSP` of the CPSP repo's fully_model.py, with the AVVP sizes."""

    def __init__(self, a_dim: int = 512, v_dim: int = 512, hidden_dim: int = 512,
                 out_dim: int = 512) -> None:
        super().__init__()
        self.v_L1 = nn.Linear(v_dim, hidden_dim, bias=False)
        self.v_L2 = nn.Linear(v_dim, hidden_dim, bias=False)
        self.v_fc = nn.Linear(v_dim, out_dim, bias=False)
        self.a_L1 = nn.Linear(a_dim, hidden_dim, bias=False)
        self.a_L2 = nn.Linear(a_dim, hidden_dim, bias=False)
        self.a_fc = nn.Linear(a_dim, out_dim, bias=False)
        self.dropout = nn.Dropout(p=0.1)
        self.layer_norm = nn.LayerNorm(out_dim, eps=1e-6)
        for layer in (self.v_L1, self.v_L2, self.a_L1, self.a_L2, self.a_fc, self.v_fc):
            nn.init.xavier_uniform_(layer.weight)

    @staticmethod
    def _prune(beta: torch.Tensor, thr: float) -> torch.Tensor:
        beta = beta / (beta.sum(dim=-1, keepdim=True) + 1e-8)
        gamma = (beta > thr).to(beta.dtype) * beta
        return gamma / (gamma.sum(dim=-1, keepdim=True) + 1e-8)

    def forward(self, a_fea: torch.Tensor, v_fea: torch.Tensor, thr_val: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v1 = self.dropout(F.relu(self.v_L1(v_fea)))
        v2 = self.dropout(F.relu(self.v_L2(v_fea)))
        a1 = self.dropout(F.relu(self.a_L1(a_fea)))
        a2 = self.dropout(F.relu(self.a_L2(a_fea)))
        beta_va = F.relu(torch.bmm(v2, a1.transpose(1, 2)) / math.sqrt(v2.shape[2]))
        beta_av = beta_va.transpose(1, 2)
        gamma_va = self._prune(beta_va, thr_val)
        gamma_av = self._prune(beta_av, thr_val)
        v_psp = v_fea + torch.bmm(gamma_va, a2)
        a_psp = a_fea + torch.bmm(gamma_av, v1)
        v_psp = self.layer_norm(self.dropout(F.relu(self.v_fc(v_psp))))
        a_psp = self.layer_norm(self.dropout(F.relu(self.a_fc(a_psp))))
        return (v_psp + a_psp) * 0.5, a_psp, v_psp


class PSPMMIL(nn.Module):
    """PSP_MMIL_Net (used for both PSP and CPSP on AVVP; they differ only in the loss)."""

    def __init__(self, threshold: float = THRESHOLD, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.fc_prob = nn.Linear(D_MODEL, n_classes)
        self.fc_frame_att = nn.Linear(D_MODEL, n_classes)
        self.fc_av_att = nn.Linear(D_MODEL, n_classes)
        self.fc_a = nn.Linear(128, D_MODEL)
        self.fc_v = nn.Linear(2048, D_MODEL)
        self.fc_st = nn.Linear(512, D_MODEL)
        self.fc_fusion = nn.Linear(2 * D_MODEL, D_MODEL)
        self.lstm = BiLSTMPair(a_dim=D_MODEL, v_dim=D_MODEL, hidden_dim=256)
        self.psp = PositiveSamplePropagation(a_dim=D_MODEL, v_dim=D_MODEL, hidden_dim=D_MODEL,
                                             out_dim=D_MODEL)
        self.thr_val = threshold

    def forward(self, audio: torch.Tensor, visual_2d: torch.Tensor, visual_3d: torch.Tensor):
        b, t, _ = visual_3d.shape
        x1 = self.fc_a(audio)
        x_visual = fuse_visual(self.fc_v, self.fc_st, self.fc_fusion, visual_2d, visual_3d)
        x1, x2 = self.lstm(x1, x_visual)
        _, x1, x2 = self.psp(x1, x2, thr_val=self.thr_val)
        # Audio segment i vs every fused visual segment j, scaled by 1/0.2.
        sims = torch.bmm(F.normalize(x1, p=2, dim=-1),
                         F.normalize(x_visual, p=2, dim=-1).transpose(1, 2)) / SIM_TEMPERATURE
        sims = sims.reshape(-1, t)
        mask = torch.arange(t, device=audio.device).repeat(b)
        x = torch.stack([x1, x2], dim=-2)
        global_prob, a_prob, v_prob, frame_prob = mmil_pooling(
            x, self.fc_prob, self.fc_frame_att, self.fc_av_att)
        return x, global_prob, a_prob, v_prob, frame_prob, sims, mask


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                           smoothing: float = SIM_SMOOTHING) -> torch.Tensor:
    """The original `LabelSmoothingLoss`: 1-s on the target, s/(C-1) elsewhere, mean over rows."""
    n_classes = logits.shape[-1]
    log_p = logits.log_softmax(dim=-1)
    with torch.no_grad():
        true_dist = torch.full_like(log_p, smoothing / (n_classes - 1))
        true_dist.scatter_(1, target.unsqueeze(1), 1.0 - smoothing)
    return torch.mean(torch.sum(-true_dist * log_p, dim=-1))


def video_contrastive(features: torch.Tensor, target: torch.Tensor, ratio: float = VCON_RATIO,
                      eta: float = VCON_ETA) -> torch.Tensor:
    """`VconInfoLoss`: features [B,10,2,D], target [B,25] multi-hot. May be NaN (see module doc)."""
    video = F.normalize(features.mean(2).mean(1), dim=-1)
    sim_exp = torch.exp(video @ video.t() / eta)
    shared = target @ target.t()
    neg = (shared == 0).to(video.dtype)
    pos = ((shared / target.sum(dim=-1, keepdim=True)) >= ratio).to(video.dtype)
    pos_item = (pos * sim_exp).sum(dim=1, keepdim=True) / pos.sum(dim=-1, keepdim=True)
    neg_item = (neg * sim_exp).sum(dim=1, keepdim=True) / neg.sum(dim=-1, keepdim=True)
    return (-torch.log(pos_item / (pos_item + neg_item))).mean()


def build_psp_avvp(**kwargs) -> PSPMMIL:
    return PSPMMIL(**kwargs)


def build_cpsp_avvp(**kwargs) -> PSPMMIL:
    return PSPMMIL(**kwargs)
