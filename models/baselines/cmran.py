"""CMRAN (Xu et al., ACM MM 2020) as in the CPSP repository: audio-guided spatial-channel
attention, internal temporal relation (self-attention) and cross-modal relation attention
per modality, an audio-video interaction block, then a supervised or weak localisation head."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.baselines.relation_blocks import (
    AudioVideoInter,
    CrossModalRelationAttModule,
    InternalTemporalRelationModule,
    SupvLocalizeModule,
)


class SpatialChannelAttention(nn.Module):
    """CMRAN's `New_Audio_Guided_Attention`: audio-guided channel then spatial attention.
    (`affine_video_guided_1/2` exist but are unused, as in the original.)"""

    def __init__(self) -> None:
        super().__init__()
        self.affine_video_1 = nn.Linear(512, 512)
        self.affine_audio_1 = nn.Linear(128, 512)
        self.affine_bottleneck = nn.Linear(512, 256)
        self.affine_v_c_att = nn.Linear(256, 512)
        self.affine_video_2 = nn.Linear(512, 256)
        self.affine_audio_2 = nn.Linear(128, 256)
        self.affine_v_s_att = nn.Linear(256, 1)
        self.affine_video_guided_1 = nn.Linear(512, 64)
        self.affine_video_guided_2 = nn.Linear(64, 128)

    def channel_spatial(self, raw: torch.Tensor, guide: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """raw, guide [B*T,49,512]; audio [B*T,128] -> [B*T,512]. Channel weights come from
        `guide` and rescale `raw` (CMRAN: guide is raw; CMBS: guide is self-attended)."""
        q_a = F.relu(self.affine_audio_1(audio)).unsqueeze(-2)
        q_v = F.relu(self.affine_video_1(guide))
        m = F.relu(self.affine_bottleneck((q_a * q_v).mean(-2)))
        channel = torch.sigmoid(self.affine_v_c_att(m)).unsqueeze(-2)
        v_c = raw * (channel + 1)
        q_v2 = F.relu(self.affine_video_2(v_c))
        q_a2 = F.relu(self.affine_audio_2(audio)).unsqueeze(-2)
        s = F.softmax(torch.tanh(self.affine_v_s_att(q_v2 * q_a2)).transpose(2, 1), dim=-1)
        return torch.bmm(s, v_c).squeeze(1)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """video [B,T,7,7,512], audio [T,B,128] -> [B,T,512]."""
        b, t, h, w, d = video.shape
        audio = audio.transpose(1, 0).reshape(b * t, -1)
        regions = video.reshape(b * t, h * w, d)
        return self.channel_spatial(regions, regions, audio).reshape(b, t, d)


class CMRANBase(nn.Module):
    def __init__(self, vis_fea_type: str, category_num: int, n_head: int, channels_first: bool) -> None:
        super().__init__()
        self.category_num = category_num
        self.channels_first = channels_first
        self.spatial_channel_att = SpatialChannelAttention()
        self.video_input_dim = 512 if vis_fea_type == "vgg" else 1024
        self.video_fc_dim, self.d_model = 512, 256
        self.v_fc = nn.Linear(self.video_input_dim, self.video_fc_dim)
        self.dropout = nn.Dropout(0.2)
        self.video_encoder = InternalTemporalRelationModule(512, 256)
        self.video_decoder = CrossModalRelationAttModule(512, 256)
        self.audio_encoder = InternalTemporalRelationModule(128, 256)
        self.audio_decoder = CrossModalRelationAttModule(128, 256)
        self.AVInter = AudioVideoInter(self.d_model, n_head=n_head, head_dropout=0.1)

    def fused(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        audio = audio.transpose(1, 0).contiguous()
        if self.channels_first:
            visual = visual.permute(0, 1, 3, 4, 2)
        visual = self.dropout(F.relu(self.v_fc(visual)))
        visual = self.spatial_channel_att(visual, audio).transpose(1, 0).contiguous()
        video_kv = self.video_encoder(visual)
        audio_q = self.audio_decoder(audio, video_kv)
        audio_kv = self.audio_encoder(audio)
        video_q = self.video_decoder(visual, audio_kv)
        return self.AVInter(video_q, audio_q)  # [T,B,256]


class CMRAN(CMRANBase):
    """Fully supervised: returns (is_event logits [T,B,1], class logits [B,C])."""

    def __init__(self, vis_fea_type: str = "vgg", category_num: int = 28,
                 channels_first: bool = False) -> None:
        super().__init__(vis_fea_type, category_num, n_head=4, channels_first=channels_first)
        self.localize_module = SupvLocalizeModule(self.d_model, category_num)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.localize_module(self.fused(video, audio))


class WeaklyLocalizationModule(nn.Module):
    def __init__(self, input_dim: int, category_num: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(input_dim, 1)
        self.event_classifier = nn.Linear(input_dim, category_num)

    def forward(self, fused: torch.Tensor):
        fused = fused.transpose(0, 1)  # [B,T,D]
        is_event = self.classifier(fused)  # [B,T,1]
        raw_logits = self.event_classifier(fused.max(1).values)[:, None, :]
        video_probs = F.softmax((is_event.sigmoid() * raw_logits).max(dim=1).values, dim=-1)
        return is_event.squeeze(-1), raw_logits.squeeze(1), video_probs


class CMRANWeak(CMRANBase):
    """Weakly supervised: returns (is_event logits [B,T], raw class logits [B,C], video probs [B,C]).

    The CPSP code forces 1024-d channels-first input (VGGSound-AVEL ResNet); here the input
    kind is a parameter so AVE VGG features (512, channels last) work."""

    def __init__(self, vis_fea_type: str = "vgg", category_num: int = 28,
                 channels_first: bool = False) -> None:
        super().__init__(vis_fea_type, category_num, n_head=2, channels_first=channels_first)
        self.localize_module = WeaklyLocalizationModule(self.d_model, category_num)

    def forward(self, video: torch.Tensor, audio: torch.Tensor):
        return self.localize_module(self.fused(video, audio))


def cmran(flag: str = "fully", **kw) -> nn.Module:
    return CMRAN(**kw) if flag == "fully" else CMRANWeak(**kw)
