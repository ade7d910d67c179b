"""Audio-guided visual attention of ECCV18 (Tian et al.), shared by AV_att, DMRN, W-A+V-att,
the CPSP AVEL and AVSDN. A base class rather than a submodule so that the five layers keep the
flat names (`affine_audio`, `affine_v`, ...) the released checkpoints use."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init


class AudioGuidedAttentionBase(nn.Module):
    """Holds affine_audio/affine_video/affine_v/affine_g/affine_h and the `attend` step."""

    def _build_attention(self, visual_dim: int = 512, hidden_size: int = 512,
                         audio_dim: int = 128, regions: int = 49) -> None:
        self.visual_dim = visual_dim
        self.affine_audio = nn.Linear(audio_dim, hidden_size)
        self.affine_video = nn.Linear(visual_dim, hidden_size)
        self.affine_v = nn.Linear(hidden_size, regions, bias=False)
        self.affine_g = nn.Linear(hidden_size, regions, bias=False)
        self.affine_h = nn.Linear(regions, 1, bias=False)

    def _xavier_attention(self) -> None:
        for layer in (self.affine_v, self.affine_g, self.affine_h, self.affine_audio, self.affine_video):
            init.xavier_uniform_(layer.weight)

    def attend(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """audio [B,T,128], video [B,T,7,7,D] (channels last) -> attended visual [B,T,D].

        The audio term `affine_g(g)` is added as a column ([N,49,1] onto [N,49,49]), i.e. one
        constant per *row*; the original broadcasts it that way and so do we. The weights
        pool the raw region features, not the projected ones."""
        b, t = video.shape[:2]
        regions = video.reshape(b * t, -1, self.visual_dim)
        v = F.relu(self.affine_video(regions))
        g = F.relu(self.affine_audio(audio.reshape(b * t, audio.shape[-1])))
        content = self.affine_v(v) + self.affine_g(g).unsqueeze(2)
        z = self.affine_h(torch.tanh(content)).squeeze(2)
        alpha = F.softmax(z, dim=-1).unsqueeze(1)
        return torch.bmm(alpha, regions).reshape(b, t, self.visual_dim)


def dmrn_fusion(u_a: nn.Module, u_v: nn.Module, audio: torch.Tensor, video: torch.Tensor,
                nb_block: int = 1) -> torch.Tensor:
    """Dual multimodal residual fusion. The residuals are crossed as in the original: the new
    visual state adds the *audio* input and vice versa."""
    for _ in range(nb_block):
        merged = 0.5 * (u_v(video) + u_a(audio))
        video, audio = torch.tanh(audio + merged), torch.tanh(video + merged)
    return 0.5 * (video + audio)


def residual_mlp(dim: int) -> nn.Sequential:
    """U_a / U_v of DMRN: Linear -> Tanh -> Linear."""
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, dim))
