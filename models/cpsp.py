"""The CPSP-repo (TPAMI 2022) family: `fully_psp_net`, `weakly_psp_net` and the VGGSound-AVEL
wrappers `resnet_psp_net` / `weakly_resnet_psp_net`, with `flag` psp | cpsp | sspsp.

'psp' and 'cpsp' build the same network (CPSP differs only in its training losses); 'sspsp'
changes what forward returns. The forward takes `(video, audio)` -- this order, as upstream --
and returns the upstream tuples. Upstream runs these in float64; here the dtype follows the
module (`.double()` for parity, float32 by default).
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from models.psp_blocks import AVGA, LSTM_A_V, PSP, Classify, av_similarity, two_linear

FLAGS = ("psp", "cpsp", "sspsp")
FULLY_THRESHOLD = 0.099
WEAKLY_THRESHOLD = 0.095
RESNET_DIMS = (256, 512, 1024, 2048)


class _Trunk(nn.Module):
    """Layers both CPSP nets share (fa, fv, AVGA, LSTMs, fully PSP and the unused extras)."""

    def __init__(self, vis_fea_type: str, flag: str, a_dim: int, v_dim: int, hidden_dim: int,
                 category_num: int, thr_val: float) -> None:
        super().__init__()
        if flag not in FLAGS:
            raise ValueError(f"flag must be one of {FLAGS}, got {flag!r}")
        self.vis_fea_type = vis_fea_type
        self.flag = flag
        self.thr_val = thr_val
        self.v_init_dim = 512 if vis_fea_type == "vgg" else 1024
        self.fa = two_linear(a_dim)
        self.fv = two_linear(self.v_init_dim)
        self.linear_v = nn.Linear(v_dim, a_dim)  # unused upstream
        self.relu = nn.ReLU()
        self.attention = AVGA(v_dim=self.v_init_dim)
        self.lstm_a_v = LSTM_A_V(a_dim=a_dim, v_dim=hidden_dim, hidden_dim=hidden_dim)
        self.psp = PSP(a_dim=a_dim * 2, v_dim=hidden_dim * 2)
        self.v_classify = Classify(hidden_dim=256)  # unused upstream
        self.a_classify = Classify(hidden_dim=256)  # unused upstream
        self.L1 = nn.Linear(2 * hidden_dim, 64, bias=False)  # unused upstream
        self.L2 = nn.Linear(64, category_num, bias=False)  # unused upstream
        self.event_classifier = nn.Sequential(nn.Linear(2 * hidden_dim, 1))
        self.category_classifier = nn.Sequential(nn.Linear(2 * hidden_dim, category_num))
        nn.init.xavier_uniform_(self.L1.weight)
        nn.init.xavier_uniform_(self.L2.weight)

    def trunk(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        fa_fea = self.fa(audio)
        video_t = self.fv(self.attention(fa_fea, video))
        lstm_audio, lstm_video = self.lstm_a_v(fa_fea, video_t)
        return self.psp(lstm_audio, lstm_video, thr_val=self.thr_val)


class CPSPFully(_Trunk):
    """fully_psp_net. Returns (event_logits [B,T], category_logits [B,C], avps [B,T], fusion);
    non-vgg adds (v, a); flag 'sspsp' returns (event_logits, category_logits, v, a)."""

    def __init__(self, vis_fea_type: str = "vgg", flag: str = "psp", a_dim: int = 128,
                 v_dim: int = 512, hidden_dim: int = 128, category_num: int = 28,
                 thr_val: float = FULLY_THRESHOLD) -> None:
        super().__init__(vis_fea_type, flag, a_dim, v_dim, hidden_dim, category_num, thr_val)

    def forward(self, video: Tensor, audio: Tensor) -> tuple[Tensor, ...]:
        fusion, v, a = self.trunk(video, audio)
        avps = av_similarity(v, a)
        event_logits = self.event_classifier(fusion).squeeze(-1)
        category_logits = self.category_classifier(fusion.mean(dim=1))
        if self.flag == "sspsp":
            return event_logits, category_logits, v, a
        if self.vis_fea_type == "vgg":
            return event_logits, category_logits, avps, fusion
        return event_logits, category_logits, avps, fusion, v, a


class CPSPWeakly(_Trunk):
    """weakly_psp_net (MIL head). Returns (fusion, event_logits [B,T], category_logits [B,C],
    predict_video_labels [B,C] softmax); non-vgg adds (a, v) -- a before v, as upstream;
    flag 'sspsp' returns (event_logits, category_logits, v, a). Like upstream, `.squeeze()`
    also drops the batch axis when B = 1."""

    def __init__(self, vis_fea_type: str = "vgg", flag: str = "psp", a_dim: int = 128,
                 v_dim: int = 512, hidden_dim: int = 128, category_num: int = 29,
                 pooling_type: str = "avg", thr_val: float = WEAKLY_THRESHOLD) -> None:
        super().__init__(vis_fea_type, flag, a_dim, v_dim, hidden_dim, category_num, thr_val)
        if pooling_type not in ("avg", "max"):
            raise ValueError("pooling_type must be 'avg' or 'max'")
        self.pooling_type = pooling_type

    def forward(self, video: Tensor, audio: Tensor) -> tuple[Tensor, ...]:
        fusion, v, a = self.trunk(video, audio)
        event_logits = self.event_classifier(fusion)  # [B,T,1]
        video_fea = fusion.mean(1) if self.pooling_type == "avg" else fusion.max(1)[0]
        category_logits = self.category_classifier(video_fea)[:, None, :]  # [B,1,C]
        fused = event_logits.sigmoid() * category_logits  # [B,T,C]
        predict_video_labels = F.softmax(fused.max(dim=1)[0], dim=-1)
        if self.flag == "sspsp":
            return event_logits.squeeze(), category_logits.squeeze(), v, a
        if self.vis_fea_type == "vgg":
            return fusion, event_logits.squeeze(), category_logits.squeeze(), predict_video_labels
        return (fusion, event_logits.squeeze(), category_logits.squeeze(), predict_video_labels,
                a, v)


class ResNetCPSPFully(nn.Module):
    """resnet_psp_net: VGGSound-AVEL maps [B,T,1024,7,7] → channels-last → inner fully net
    (`psp.` prefix). `align_v` exists upstream but is never used."""

    def __init__(self, vis_fea_type: str = "resnet", flag: str = "psp", last_layer: int = 3,
                 v_dim: int = 512, category_num: int = 141, thr_val: float = FULLY_THRESHOLD
                 ) -> None:
        super().__init__()
        self.flag = flag
        self.align_v = nn.Linear(RESNET_DIMS[last_layer - 1], v_dim)
        # upstream builds the inner net with the default flag, so it returns 6 values
        self.psp = CPSPFully(vis_fea_type=vis_fea_type, a_dim=128, v_dim=v_dim,
                             category_num=category_num, thr_val=thr_val)

    def forward(self, imgs: Tensor, audio: Tensor) -> tuple[Tensor, ...]:
        event_logits, category_logits, avps, fusion, v, a = self.psp(imgs.permute(0, 1, 3, 4, 2),
                                                                     audio)
        if self.flag == "sspsp":
            return event_logits, category_logits, v, a
        return event_logits, category_logits, avps, fusion


class ResNetCPSPWeakly(nn.Module):
    """weakly_resnet_psp_net. Returns (fusion, event_logits, category_logits,
    predict_video_labels); flag 'sspsp' returns (a, v, event_logits, category_logits,
    predict_video_labels), as the upstream training loop unpacks it."""

    def __init__(self, vis_fea_type: str = "resnet", flag: str = "psp", last_layer: int = 3,
                 v_dim: int = 512, thr_val: float = WEAKLY_THRESHOLD, category_num: int = 141
                 ) -> None:
        super().__init__()
        self.flag = flag
        self.align_v = nn.Linear(RESNET_DIMS[last_layer - 1], v_dim)
        self.psp = CPSPWeakly(vis_fea_type=vis_fea_type, a_dim=128, v_dim=v_dim,
                              thr_val=thr_val, category_num=category_num)

    def forward(self, imgs: Tensor, audio: Tensor) -> tuple[Tensor, ...]:
        fusion, event_logits, category_logits, pred, a, v = self.psp(imgs.permute(0, 1, 3, 4, 2),
                                                                     audio)
        if self.flag == "sspsp":
            return a, v, event_logits, category_logits, pred
        return fusion, event_logits, category_logits, pred


def build_cpsp(flag: str, setting: str, dataset: str, category_num: int | None = None,
               thr_val: float | None = None, **kw: object) -> nn.Module:
    """One of the twelve CPSP-repo variants: flag psp|cpsp|sspsp, setting fully|weakly,
    dataset ave (VGG-19 maps [B,T,7,7,512]) | vggsound (ResNet maps [B,T,1024,7,7])."""
    fully = setting == "fully"
    thr = thr_val if thr_val is not None else (FULLY_THRESHOLD if fully else WEAKLY_THRESHOLD)
    if dataset == "ave":
        c = category_num if category_num is not None else 28
        cls = CPSPFully if fully else CPSPWeakly
        return cls(vis_fea_type="vgg", flag=flag, category_num=c, thr_val=thr, **kw)  # type: ignore[arg-type]
    if dataset == "vggsound":
        c = category_num if category_num is not None else 141
        cls2 = ResNetCPSPFully if fully else ResNetCPSPWeakly
        return cls2(vis_fea_type="resnet", flag=flag, category_num=c, thr_val=thr, **kw)  # type: ignore[arg-type]
    raise ValueError(f"dataset must be 'ave' or 'vggsound', got {dataset!r}")
