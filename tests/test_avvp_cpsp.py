"""PSP/CPSP for AVVP (`cpsp_avvp`): outputs, pruning, the extra loss terms, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.cpsp_avvp import PSPMMIL, PositiveSamplePropagation, smoothed_cross_entropy, video_contrastive
from models.registry import build
from models.training.avvp_task import avvp_loss
from models.training.presets import get_preset


def psp_loss(outputs, target):
    """The PSP-AVVP loss `avel train --task avvp --model psp` runs (its preset's options)."""
    return avvp_loss(outputs, target, get_preset("avvp", "psp").options)[0]


def cpsp_loss(outputs, target):
    return avvp_loss(outputs, target, get_preset("avvp", "cpsp").options)[0]


def inputs(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 10, 128, generator=g), torch.randn(b, 80, 2048, generator=g),
            torch.randn(b, 10, 512, generator=g))


def test_forward_returns_the_seven_outputs_of_the_original():
    torch.manual_seed(0)
    model = build("cpsp_avvp").eval()
    assert model.thr_val == pytest.approx(0.090)
    x, g, a, v, frame, sims, mask = model(*inputs(3))
    assert x.shape == (3, 10, 2, 512)
    assert g.shape == a.shape == v.shape == (3, 25)
    assert frame.shape == (3, 10, 2, 25)
    assert sims.shape == (30, 10)
    assert mask.tolist() == list(range(10)) * 3


def test_similarities_are_cosines_of_psp_audio_and_fused_visual_over_0_2():
    torch.manual_seed(1)
    model = PSPMMIL().eval()
    audio, v2d, v3d = inputs(2, seed=4)
    with torch.no_grad():
        x, *_, sims, _ = model(audio, v2d, v3d)
        # Fused visual before the LSTM, from the spec: fc_v, mean of 8 frames, concat fc_st, fc_fusion.
        v2 = model.fc_v(v2d).reshape(2, 10, 8, 512).mean(2)
        fused = model.fc_fusion(torch.cat([v2, model.fc_st(v3d)], -1))
        b, i, j = 1, 3, 7
        expected = F.cosine_similarity(x[b, i, 0], fused[b, j], dim=0) / 0.2
    assert sims[b * 10 + i, j].item() == pytest.approx(expected.item(), rel=1e-4)


def test_psp_pruning_drops_weights_not_above_threshold_and_renormalises():
    beta = torch.tensor([[[5.0, 3.0, 0.5, 1.5, 0.0]]])  # row sum 10 → 0.5 0.3 0.05 0.15 0
    gamma = PositiveSamplePropagation._prune(beta, 0.09)
    expected = torch.tensor([0.5, 0.3, 0.0, 0.15, 0.0]) / 0.95
    torch.testing.assert_close(gamma[0, 0], expected, rtol=1e-5, atol=1e-6)
    # Strict '>': a weight equal to the threshold is dropped.
    beta = torch.tensor([[[1.0, 1.0, 2.0]]])              # → 0.25 0.25 0.5
    gamma = PositiveSamplePropagation._prune(beta, 0.25)
    torch.testing.assert_close(gamma[0, 0], torch.tensor([0.0, 0.0, 1.0]), rtol=1e-5, atol=1e-6)


def test_smoothed_cross_entropy_matches_the_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0] + [0.0] * 7])
    target = torch.tensor([0])
    log_p = torch.log_softmax(logits, dim=-1)[0]
    expected = -(0.9 * log_p[0] + sum(0.1 / 9 * log_p[j] for j in range(1, 10)))
    assert smoothed_cross_entropy(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_psp_training_loss_adds_the_similarity_term_to_the_three_bce_terms():
    """On `avel train`'s path: PSP = HAN's BCE terms + label-smoothed CE of the similarities
    (0.9 on a segment's own index, 0.1/9 elsewhere), written out here by hand."""
    torch.manual_seed(4)
    model = PSPMMIL().eval()
    target = torch.zeros(2, 25)
    target[0, 1] = target[1, 7] = 1
    with torch.no_grad():
        out = model(*inputs(2))
        bce, _ = avvp_loss(out, target, {"loss": "han"})
        log_p = torch.log_softmax(out[5], dim=-1)
        own = log_p.gather(1, out[6].unsqueeze(1)).squeeze(1)
        by_hand = -(0.9 * own + 0.1 / 9 * (log_p.sum(-1) - own)).mean()
        loss, parts = avvp_loss(out, target, get_preset("avvp", "psp").options)
    assert parts["similarity"] == pytest.approx(by_hand.item(), rel=1e-5)
    assert loss.item() == pytest.approx(bce.item() + by_hand.item(), rel=1e-5)


def _vcon_by_hand(feats, target, ratio, eta):
    video = [f.mean(dim=(0, 1)) for f in feats]
    video = [v / v.norm() for v in video]
    n = len(video)
    losses = []
    for i in range(n):
        n_labels = target[i].sum().item()
        pos, neg = [], []
        for j in range(n):
            shared = (target[i] * target[j]).sum().item()
            e = math.exp(float(video[i] @ video[j]) / eta)
            if shared == 0:
                neg.append(e)
            if shared / n_labels >= ratio:
                pos.append(e)
        p, q = sum(pos) / len(pos), sum(neg) / len(neg)
        losses.append(-math.log(p / (p + q)))
    return sum(losses) / n


def test_video_contrastive_matches_a_hand_computation():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(4, 10, 2, 8, generator=g)
    target = torch.zeros(4, 25)
    target[0, [0, 1]] = 1   # 0 and 1 share both labels → positives of each other
    target[1, [0, 1]] = 1
    target[2, [0, 5]] = 1   # shares half of its labels with 0/1: neither pos (0.5 < 0.9) nor neg
    target[3, 7] = 1        # shares nothing → negative for everybody
    got = video_contrastive(feats, target, ratio=0.9, eta=0.2).item()
    assert got == pytest.approx(_vcon_by_hand(feats, target, 0.9, 0.2), rel=1e-5)


def test_vcon_is_skipped_when_it_is_nan():
    torch.manual_seed(3)
    model = PSPMMIL().eval()
    target = torch.zeros(2, 25)
    target[:, 0] = 1          # every video shares a label → no negative → 0/0 → NaN
    with torch.no_grad():
        out = model(*inputs(2))
        assert torch.isnan(video_contrastive(out[0], target))
        assert cpsp_loss(out, target).item() == pytest.approx(psp_loss(out, target).item())
    target[1] = 0
    target[1, 3] = 1          # now each has a negative: CPSP adds a positive term
    with torch.no_grad():
        assert cpsp_loss(out, target).item() > psp_loss(out, target).item()


@pytest.mark.slow
def test_cpsp_loss_decreases_on_a_separable_set():
    from tests.test_avvp_han import separable_set

    torch.manual_seed(1)
    audio, v2d, v3d, target = separable_set(8)
    model = PSPMMIL()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    model.eval()
    with torch.no_grad():
        start = cpsp_loss(model(audio, v2d, v3d), target).item()
    model.train()
    for _ in range(4):
        opt.zero_grad()
        cpsp_loss(model(audio, v2d, v3d), target).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        end = cpsp_loss(model(audio, v2d, v3d), target).item()
    assert end < 0.8 * start
