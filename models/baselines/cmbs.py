"""CMBS (Xia & Zhao, CVPR 2022): CMRAN-style relation modules plus a visual self-attention in the
spatial attention, time-level background-suppression gates and class-activation (top-4) scores.

Configs are the keys of CMBS's `configs/main.json` / `weak.json` (`video_inputdim`,
`audio_inputdim`, `d_model`, `alpha`, `gamma`, `beta`)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.baselines.cmran import SpatialChannelAttention
from models.baselines.relation_blocks import (
    AudioVideoInter,
    CrossModalRelationAttModule,
    InternalTemporalRelationModule,
    SupvLocalizeModule,
    topk_mean_over_time,
)

MAIN_CONFIG = {"video_inputdim": 512, "audio_inputdim": 128, "d_model": 256,
               "alpha": 0.1, "gamma": 0.3, "beta": 0.4}
WEAK_CONFIG = {"video_inputdim": 512, "audio_inputdim": 128, "d_model": 256,
               "alpha": 0.2, "gamma": 0.5, "beta": 0.5}


class CMBSAttention(SpatialChannelAttention):
    """CMBS's `New_Audio_Guided_Attention(beta)`. `ave_bottleneck` and CMRAN's
    `affine_video_guided_*` are never used; `ave_bottleneck` is kept for checkpoint keys, the
    other two are removed because CMBS does not have them."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        del self.affine_video_guided_1, self.affine_video_guided_2
        self.beta = beta
        self.video_query = nn.Linear(512, 128)
        self.video_key = nn.Linear(512, 128)
        self.video_value = nn.Linear(512, 512)
        self.affine_video_ave = nn.Linear(512, 256)
        self.affine_video_3 = nn.Linear(512, 256)
        self.ave_bottleneck = nn.Linear(512, 256)
        self.ave_v_att = nn.Linear(256, 1)
        self.dropout = nn.Dropout(0.2)
        self.norm = nn.LayerNorm(512)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """video [B,T,7,7,512], audio [T,B,128] -> [B,T,512]."""
        b, t, h, w, d = video.shape
        audio = audio.transpose(1, 0).reshape(b * t, -1)
        raw = video.reshape(b * t, h * w, d)
        # 1. spatial self-attention over the 49 regions (no 1/sqrt(d) scaling, as the original)
        attn = F.softmax(torch.bmm(self.video_query(raw), self.video_key(raw).transpose(1, 2)), dim=-1)
        x = self.norm(raw + self.dropout(torch.matmul(attn, self.video_value(raw))))
        # 2. self-guided spatial pooling
        avg = F.relu(self.affine_video_ave(x.sum(dim=1) / (h * w))).unsqueeze(-2)
        q3 = F.relu(self.affine_video_3(x))
        w_self = F.softmax(torch.tanh(self.ave_v_att(q3 * avg)).transpose(2, 1), dim=-1)
        f_self = torch.bmm(w_self, x).squeeze(1)
        # 3-4. channel weights from x applied to the raw regions, then audio spatial attention
        f_cs = self.channel_spatial(raw, x, audio)
        return (f_cs + self.beta * torch.sigmoid(f_self) * f_cs).reshape(b, t, d)


class RNNEncoder(nn.Module):
    def __init__(self, audio_dim: int, video_dim: int, d_model: int, num_layers: int = 1) -> None:
        super().__init__()
        # dropout=0.2 on a one-layer LSTM has no effect (PyTorch warns); kept as 0 to stay quiet
        self.audio_rnn = nn.LSTM(audio_dim, d_model // 2, num_layers=num_layers, batch_first=True,
                                 bidirectional=True)
        self.visual_rnn = nn.LSTM(video_dim, d_model, num_layers=num_layers, batch_first=True,
                                  bidirectional=True)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.audio_rnn(audio)[0], self.visual_rnn(visual)[0]


def _gate(d_model: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, 1), nn.Sigmoid())


class CMBS(nn.Module):
    """Fully supervised `supv_main_model`: returns (is_event logits [T,B,1], event scores [B,28],
    av_gate [T,B,1] (a product of sigmoids), av_score [B,28])."""

    def __init__(self, config: dict | None = None, category_num: int = 28) -> None:
        super().__init__()
        c = {**MAIN_CONFIG, **(config or {})}
        self.config, self.alpha, self.gamma = c, c["alpha"], c["gamma"]
        d, vin, ain = c["d_model"], c["video_inputdim"], c["audio_inputdim"]
        self.spatial_channel_att = CMBSAttention(c["beta"])
        self.v_fc = nn.Linear(vin, 512)
        self.dropout = nn.Dropout(0.2)
        self.video_encoder = InternalTemporalRelationModule(vin, d, 1024)
        self.video_decoder = CrossModalRelationAttModule(vin, d, 1024)
        self.audio_encoder = InternalTemporalRelationModule(d, d, 1024)
        self.audio_decoder = CrossModalRelationAttModule(d, d, 1024)
        self.audio_visual_rnn_layer = RNNEncoder(ain, vin, d, 1)
        self.audio_gated = _gate(d)
        self.video_gated = _gate(d)
        self.AVInter = AudioVideoInter(d, n_head=4, head_dropout=0.2)
        self.VAInter = AudioVideoInter(d, n_head=4, head_dropout=0.2)
        self.localize_module = SupvLocalizeModule(d, category_num)
        self.video_norm = nn.LayerNorm(d)  # unused in the original, kept for its keys
        self.audio_norm = nn.LayerNorm(d)
        self.audio_cas = nn.Linear(d, category_num)
        self.video_cas = nn.Linear(d, category_num)

    def forward(self, video: torch.Tensor, audio: torch.Tensor):
        audio_feature = audio
        audio_seq = audio.transpose(1, 0).contiguous()
        visual = self.dropout(F.relu(self.v_fc(video)))
        visual = self.spatial_channel_att(visual, audio_seq)
        a_rnn, v_rnn = self.audio_visual_rnn_layer(audio_feature, visual)
        a_in, v_in = a_rnn.transpose(1, 0).contiguous(), v_rnn.transpose(1, 0).contiguous()
        video_kv = self.video_encoder(v_in)
        audio_q = self.audio_decoder(a_in, video_kv)
        audio_kv = self.audio_encoder(a_in)
        video_q = self.video_decoder(v_in, audio_kv)
        g_a, g_v = self.audio_gated(audio_kv), self.video_gated(video_kv)
        av_gate = g_a * g_v
        video_q = video_q + g_a * video_q * self.alpha
        audio_q = audio_q + g_v * audio_q * self.alpha
        score_v = topk_mean_over_time(self.video_cas(video_q).permute(1, 0, 2))
        score_a = topk_mean_over_time(self.audio_cas(audio_q).permute(1, 0, 2))
        av_score = (score_v + score_a) / 2
        video_q = self.AVInter(video_q, audio_q)
        audio_q = self.VAInter(audio_q, video_q)  # sees the updated video_q, as the original
        is_event, event_scores = self.localize_module((video_q + audio_q) / 2)
        return is_event, event_scores + self.gamma * av_score, av_gate, av_score


class CASModule(nn.Module):
    def __init__(self, d_model: int, num_class: int = 28) -> None:
        super().__init__()
        self.classifier = nn.Sequential(nn.Conv1d(d_model, num_class + 1, kernel_size=1, bias=False))

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return self.classifier(content.permute(0, 2, 1)).permute(0, 2, 1)


class CMBSWeak(nn.Module):
    """Weakly supervised `weak_main_model`: returns (av_gate [B,T], raw logits [B,29],
    video probs [B,29]). 29 = 28 events + background (trained with background-only videos)."""

    def __init__(self, config: dict | None = None, category_num: int = 28) -> None:
        super().__init__()
        c = {**WEAK_CONFIG, **(config or {})}
        self.config, self.alpha, self.gamma = c, c["alpha"], c["gamma"]
        d, vin, ain = c["d_model"], c["video_inputdim"], c["audio_inputdim"]
        self.spatial_channel_att = CMBSAttention(c["beta"])
        self.v_fc = nn.Linear(vin, vin)
        self.dropout = nn.Dropout(0.1)
        self.video_encoder = InternalTemporalRelationModule(vin, d, 2048)
        self.video_decoder = CrossModalRelationAttModule(vin, d, 1024)
        self.audio_encoder = InternalTemporalRelationModule(ain, d, 2048)
        self.audio_decoder = CrossModalRelationAttModule(ain, d, 1024)
        self.AVInter = AudioVideoInter(d, n_head=2, head_dropout=0.2)
        self.VAInter = AudioVideoInter(d, n_head=2, head_dropout=0.2)
        self.audio_gated = _gate(d)
        self.video_gated = _gate(d)
        self.CAS_model = CASModule(d, num_class=category_num)
        self.classifier = nn.Linear(d, 1)  # unused in the original, kept for its keys
        self.audio_cas = nn.Linear(d, category_num + 1)
        self.video_cas = nn.Linear(d, category_num + 1)

    def forward(self, video: torch.Tensor, audio: torch.Tensor):
        audio = audio.transpose(1, 0).contiguous()
        visual = self.dropout(F.relu(self.v_fc(video)))
        visual = self.spatial_channel_att(visual, audio).transpose(1, 0).contiguous()
        video_kv = self.video_encoder(visual)
        audio_q = self.audio_decoder(audio, video_kv)
        audio_kv = self.audio_encoder(audio)
        video_q = self.video_decoder(visual, audio_kv)
        # note the swap against the supervised model: the audio gate reads the video keys
        g_a, g_v = self.audio_gated(video_kv), self.video_gated(audio_kv)
        av_gate = ((g_a + g_v) / 2).permute(1, 0, 2)  # [B,T,1]
        video_q = (1 - self.alpha) * video_q + g_a * video_q * self.alpha
        audio_q = (1 - self.alpha) * audio_q + g_v * audio_q * self.alpha
        video_cas_gate = self.video_cas(video_q).permute(1, 0, 2).sigmoid()
        audio_cas_gate = self.audio_cas(audio_q).permute(1, 0, 2).sigmoid()
        video_q = self.AVInter(video_q, audio_q)
        audio_q = self.VAInter(audio_q, video_q)
        cas = self.CAS_model(((video_q + audio_q) / 2).transpose(0, 1))
        cas = self.gamma * video_cas_gate * cas + self.gamma * audio_cas_gate * cas
        raw_logits = topk_mean_over_time(cas)[:, None, :]
        video_probs = F.softmax((av_gate * raw_logits).max(dim=1).values, dim=-1)
        return av_gate.squeeze(-1), raw_logits.squeeze(1), video_probs


def cmbs(flag: str = "fully", config: dict | None = None, category_num: int = 28) -> nn.Module:
    if flag == "fully":
        return CMBS(config, category_num)
    return CMBSWeak(config, category_num)
