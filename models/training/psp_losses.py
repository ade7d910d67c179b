"""The PSP/CPSP training losses, each as the original computes it (quirks included), with a
corrected variant where the original is broken. Both variants are pinned by tests.

Faithful vs corrected, where they differ:
- `segment_contrastive_loss` (PSA_s): the original sums over the wrong axis, so every column
  is either all-positive (term ~0) or all-negative (term = -log 1e-12 = 27.631); the value is
  ~27.631·#bg/#event and its gradient is ~0. `corrected=True` sums each *event anchor's row*:
  positives = other event segments, negatives = the mean over background segments.
- `cpsp_weakly_class_loss`: upstream applies MultiLabelSoftMarginLoss to the *softmax*
  output (kept: it is what the model was trained with). For VGGSound-AVEL the target arrives
  as [B,1,C] and broadcasts against [B,C] into a [B,B,C] loss (wrong for B > 1);
  `broadcast_quirk=True` reproduces that, the default uses the proper [B,C] target.
- `video_contrastive_loss`: upstream's `addmm_(1, -2, ...)` form no longer exists in torch;
  the same arithmetic (beta 1, alpha -2) is used.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

LOG_EPS = 1e-12


def avps_loss(av_simm: Tensor, soft_label: Tensor) -> Tensor:
    """AVPS (Eq. 8-9): s = ReLU(cos), p = s / (Σ_t s + 1e-8), then MSE(p, gt) averaged
    over B·T."""
    s = F.relu(av_simm)
    p = s / (s.sum(dim=-1, keepdim=True) + 1e-8)
    return F.mse_loss(p, soft_label)


def cpsp_avps_target(labels_bce: Tensor) -> Tensor:
    """CPSP's AVPS target: the event indicator normalised to sum 1 per video (+1e-6)."""
    return labels_bce / (labels_bce.sum(-1, keepdim=True) + 1e-6)


def segment_flags(labels_bce: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`get_flag_by_gt`: e [B,T] long, pos[b,i,j] = e_i·e_j, neg[b,i,j] = e_i·(1 - e_j)."""
    e = labels_bce.long()
    pos = e[:, :, None] * e[:, None, :]
    neg = e[:, :, None] * (1 - e[:, None, :])
    return e, pos, neg


def segment_contrastive_loss(fusion: Tensor, event_flag: Tensor, pos_flag: Tensor,
                             neg_flag: Tensor, t: float = 0.6, corrected: bool = False) -> Tensor:
    """PSA_s. Faithful: column sums (dim=1) as upstream. Videos with no event are masked out;
    the result is the mean over the others (NaN when no video has an event, as upstream)."""
    num_event = event_flag.sum(dim=-1, keepdim=True).to(fusion.dtype)  # [B,1]
    has_event = (num_event != 0).to(fusion.dtype)
    num_bg = event_flag.size(-1) - num_event
    f = F.normalize(fusion, dim=-1)
    cos = torch.bmm(f, f.transpose(1, 2))
    pos = pos_flag.to(fusion.dtype)
    neg = neg_flag.to(fusion.dtype)
    exp_pos = torch.exp(cos * pos / t) * pos
    exp_neg = torch.exp(cos * neg / t) * neg
    if not corrected:
        p = exp_pos.sum(dim=1)  # [B,T] column sums
        n = exp_neg.sum(dim=1) / (num_bg + LOG_EPS)
        terms = -torch.log(p / (p + n + LOG_EPS) + LOG_EPS)
        loss = terms.sum(dim=-1, keepdim=True) / (num_event + LOG_EPS)
    else:
        p = exp_pos.sum(dim=2)  # [B,T] row sums: anchor i against the other segments
        n = exp_neg.sum(dim=2) / (num_bg + LOG_EPS)
        terms = -torch.log(p / (p + n + LOG_EPS) + LOG_EPS) * event_flag.to(fusion.dtype)
        loss = terms.sum(dim=-1, keepdim=True) / (num_event + LOG_EPS)
    loss = loss * has_event
    return loss.sum() / has_event.sum()


def video_contrastive_loss(fusion: Tensor, class_ids: Tensor, margin: float = 0.2,
                           neg_num: int = 3) -> Tensor:
    """PSA_v: g = mean_t(L2-normalised fusion) (not renormalised); hardest positive distance
    vs the mean of the `neg_num` nearest negatives; MarginRankingLoss(an, ap, y=1).
    With fewer than `neg_num` negatives the 1e12 fill makes the loss 0, as upstream."""
    g = F.normalize(fusion, dim=-1).mean(dim=1)
    bs = g.size(0)
    sq = g.pow(2).sum(dim=1, keepdim=True).expand(bs, bs)
    dist = torch.addmm(sq + sq.t(), g, g.t(), beta=1, alpha=-2).clamp(min=1e-12).sqrt()
    labels = class_ids.reshape(-1)
    mask = labels.expand(bs, bs).eq(labels.expand(bs, bs).t()).to(g.dtype)
    inf = 1e12
    dist_ap = dist * mask - inf * (1 - mask)
    dist_an = dist * (1 - mask) + inf * mask
    ap = dist_ap.topk(k=1, dim=1, largest=True)[0].squeeze(-1)
    an = dist_an.topk(k=min(neg_num, bs), dim=1, largest=False)[0].mean(dim=-1)
    return nn.MarginRankingLoss(margin=margin)(an, ap, torch.ones_like(an))


def label_free_nce_loss(fea_a: Tensor, fea_v: Tensor, t: float = 0.1) -> Tensor:
    """SSPSP's InfoNCE over the B·T normalised (a, v) pairs: the positive is the matching v,
    the denominator sums over all B·T visual features."""
    dim = fea_a.size(-1)
    a = F.normalize(fea_a, dim=-1).reshape(-1, dim)
    v = F.normalize(fea_v, dim=-1).reshape(-1, dim)
    pos = torch.exp((a * v).sum(dim=-1) / t)
    allv = torch.exp(a @ v.t() / t).sum(dim=-1)
    return torch.mean(-torch.log(pos / allv))


def psp_fully_loss(out: Tensor, segment_labels: Tensor, cross_att: Tensor, avps_gt: Tensor,
                   lambda_avps: float = 100.0) -> tuple[Tensor, Tensor, Tensor]:
    """PSP repo fully: CE over the C+1 classes per segment + λ·AVPS. Returns (total, ce, avps)."""
    ce = F.cross_entropy(out.permute(0, 2, 1), segment_labels)
    avps = avps_loss(cross_att, avps_gt)
    return ce + lambda_avps * avps, ce, avps


def psp_avps_target(labels: Tensor) -> Tensor:
    """PSP repo's AVPS target: 1/|S| on the segments S of the video's smallest-index non-zero
    label column, 0 elsewhere (the stale-buffer quirk of the loader is not reproduced:
    it depends on batch history, not on the video)."""
    video_level = labels.amax(dim=1)  # [B,C+1]
    col = (video_level > 0).to(torch.int64).argmax(dim=-1)  # first non-zero column
    seg = torch.gather(labels, 2, col[:, None, None].expand(-1, labels.size(1), 1)).squeeze(-1)
    return seg / seg.sum(dim=-1, keepdim=True).clamp(min=1e-12)


def psp_prob_labels(labels: Tensor) -> Tensor:
    """`prob_label.h5` as the PSP weakly script reads it, [B,C+1]: the per-second one-hots
    averaged over time (a 3-second event of class k → 0.3 at k, 0.7 at background). The file
    itself is not shipped with the repos; this is the reading the export stage writes too
    (pipeline.datasets.labels on branch export), so exported files and `avel train` agree."""
    return labels.mean(dim=1)


def psp_weakly_loss(out_avg: Tensor, prob_labels: Tensor) -> Tensor:
    """PSP repo weakly: BCELoss on the softmax output vs the normalised video label."""
    return F.binary_cross_entropy(out_avg, prob_labels)


def cpsp_weakly_class_loss(predict_video_labels: Tensor, labels: Tensor,
                           broadcast_quirk: bool = False) -> Tensor:
    """CPSP weakly: MultiLabelSoftMarginLoss on the softmax probabilities vs the multi-hot
    video label [B,C]. `broadcast_quirk`: feed the target as [B,1,C] like the VGGSound-AVEL
    loader does, reproducing the [B,B,C] broadcast."""
    target = labels.reshape(labels.size(0), 1, -1) if broadcast_quirk else labels
    x = predict_video_labels
    if broadcast_quirk:
        # nn.MultiLabelSoftMarginLoss's own arithmetic, which broadcasts silently:
        # loss = -(y·logσ(x) + (1-y)·logσ(-x)), summed over dim 1 (of the broadcast
        # [B,B,C] result), / C, then the mean.
        el = -(target * F.logsigmoid(x) + (1 - target) * F.logsigmoid(-x))
        return (el.sum(dim=x.dim() - 1) / x.size(1)).mean()
    return nn.MultiLabelSoftMarginLoss()(x, target)
