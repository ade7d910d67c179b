"""Each PSP/CPSP loss on tiny hand-built tensors vs the arithmetic written out here."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from models.training import psp_losses as L


def test_avps_loss_relu_normalise_then_mse():
    # cos = [0.5, -0.2, 0.5, 0]: ReLU -> [0.5, 0, 0.5, 0], sum 1 -> p = [0.5, 0, 0.5, 0]
    cos = torch.tensor([[0.5, -0.2, 0.5, 0.0]], dtype=torch.float64)
    gt = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    # p ≈ [0.5, 0, 0.5, 0] (1e-8 in the denominator); squared errors 0.25, 0, 0.25, 0
    expected = (0.25 + 0.25) / 4
    assert L.avps_loss(cos, gt).item() == pytest.approx(expected, rel=1e-7)


def test_cpsp_avps_target_normalises_event_indicator():
    e = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert torch.allclose(L.cpsp_avps_target(e), torch.tensor([[0.5, 0.5, 0, 0]]) * (2 / (2 + 1e-6)))


def test_segment_flags_match_get_flag_by_gt():
    e, pos, neg = L.segment_flags(torch.tensor([[1.0, 0.0, 1.0]]))
    assert e.tolist() == [[1, 0, 1]]
    # pos[i][j] = e_i e_j ; neg[i][j] = e_i (1 - e_j)
    assert pos[0].tolist() == [[1, 0, 1], [0, 0, 0], [1, 0, 1]]
    assert neg[0].tolist() == [[0, 1, 0], [0, 0, 0], [0, 1, 0]]


def _psa_s_inputs(events: list[int]):
    torch.manual_seed(0)
    fusion = torch.randn(1, len(events), 8, dtype=torch.float64, requires_grad=True)
    e, pos, neg = L.segment_flags(torch.tensor([events], dtype=torch.float64))
    return fusion, e, pos, neg


def test_psa_s_faithful_is_27_631_times_bg_over_events():
    # 10 segments, 4 events, 6 background. Each event column: N_j = 0 -> -log(P/P + 1e-12)
    # ≈ 0; each background column: P_j = 0 -> -log(0 + 1e-12) = 27.631. Sum / #event.
    fusion, e, pos, neg = _psa_s_inputs([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    loss = L.segment_contrastive_loss(fusion, e, pos, neg, t=0.6)
    expected = 6 * (-math.log(1e-12)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert -math.log(1e-12) == pytest.approx(27.631, abs=1e-3)
    loss.backward()
    assert fusion.grad.abs().max().item() < 1e-10  # no training signal (the upstream bug)


def test_psa_s_masks_event_free_videos():
    torch.manual_seed(1)
    fusion = torch.randn(2, 4, 8, dtype=torch.float64)
    e, pos, neg = L.segment_flags(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float64))
    # only video 0 counts: 3 background columns x 27.631 / 1 event
    loss = L.segment_contrastive_loss(fusion, e, pos, neg)
    assert loss.item() == pytest.approx(3 * -math.log(1e-12), rel=1e-6)


def test_psa_s_corrected_row_wise_by_hand():
    # Two events (0, 1) and one background (2), orthogonal/identical unit vectors chosen so
    # cosines are exact: f0 = f1 = x, f2 = y (cos(x,y) = 0).
    x = torch.tensor([1.0, 0.0], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0], dtype=torch.float64)
    fusion = torch.stack([x, x, y])[None]
    e, pos, neg = L.segment_flags(torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64))
    t = 0.5
    # anchor 0: positives j in {0,1}: exp(1/t) + exp(1/t); negatives: exp(0/t)/#bg(=1) = 1
    p = 2 * math.exp(1 / t)
    term = -math.log(p / (p + 1.0))
    expected = (term + term) / 2  # anchors 0 and 1 identical, mean over 2 events
    got = L.segment_contrastive_loss(fusion, e, pos, neg, t=t, corrected=True)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_psa_v_margin_behaviour_by_hand():
    # Per-video mean embeddings g (fusion constant over time, unit rows) on a line:
    # class 0: g0 = (1,0), g1 = (0.6,0.8); class 1: g2 = (0,1), g3 = (-1,0) ... computed below.
    g = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8]], dtype=torch.float64)
    fusion = g[:, None, :].repeat(1, 3, 1)
    labels = torch.tensor([0, 0, 1, 1])
    d = torch.cdist(g, g).tolist()  # Euclidean distances (independent of the code under test)
    margin = 0.2
    gaps = []
    for i in range(4):
        ap = max(d[i][j] for j in range(4) if labels[j] == labels[i])
        an = min(d[i][j] for j in range(4) if labels[j] != labels[i])  # neg_num = 1
        gaps.append(ap - an)
    expected = sum(max(0.0, gap + margin) for gap in gaps) / 4
    got = L.video_contrastive_loss(fusion, labels, margin=margin, neg_num=1)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # margin 0: only rows whose hardest positive is farther than the nearest negative count
    zero = L.video_contrastive_loss(fusion, labels, margin=0.0, neg_num=1)
    assert zero.item() == pytest.approx(sum(max(0.0, g) for g in gaps) / 4, abs=1e-6)
    # a huge margin makes every term active: mean(ap - an) + margin
    big = L.video_contrastive_loss(fusion, labels, margin=5.0, neg_num=1)
    assert big.item() == pytest.approx(sum(gaps) / 4 + 5.0, abs=1e-6)


def test_psa_v_too_few_negatives_gives_zero():
    # 3 videos, neg_num 3: each row has at most 2 real negatives; the 1e12 fill dominates
    g = torch.eye(3, dtype=torch.float64)
    fusion = g[:, None, :].repeat(1, 2, 1)
    assert L.video_contrastive_loss(fusion, torch.tensor([0, 1, 2]), neg_num=3).item() == 0.0


def test_label_free_nce_by_hand():
    # B=1, T=2; a = [x, y], v = [x, y] with x ⟂ y, t = 0.5
    a = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    v = a.clone()
    t = 0.5
    # row 0: pos = e^{1/t}; denominator e^{1/t} + e^{0}; same for row 1
    term = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 1.0))
    assert L.label_free_nce_loss(a, v, t=t).item() == pytest.approx(term, rel=1e-9)


def test_psp_avps_target_uses_first_nonzero_column():
    labels = torch.zeros(1, 4, 3)
    labels[0, 0, 1] = labels[0, 1, 1] = 1  # class 1 on segments 0,1
    labels[0, 2, 2] = labels[0, 3, 2] = 1  # background (column 2) on 2,3
    assert L.psp_avps_target(labels)[0].tolist() == [0.5, 0.5, 0.0, 0.0]


def test_psp_weakly_loss_is_bce_on_probabilities():
    p = torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    expected = -(math.log(0.7) + math.log(0.8) + math.log(0.9)) / 3
    assert L.psp_weakly_loss(p, y).item() == pytest.approx(expected, rel=1e-9)


def test_cpsp_weakly_loss_on_softmax_by_hand():
    p = torch.tensor([[0.6, 0.4]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)

    def logsig(z):
        return -math.log1p(math.exp(-z))
    expected = -(logsig(0.6) + logsig(-0.4)) / 2
    assert L.cpsp_weakly_class_loss(p, y).item() == pytest.approx(expected, rel=1e-9)


def test_vggsound_weakly_broadcast_quirk_equals_torch_and_differs_from_fixed():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(3, 5, dtype=torch.float64), -1)
    y = torch.zeros(3, 5, dtype=torch.float64)
    y[0, 1] = y[1, 3] = y[2, 0] = 1
    torch_upstream = nn.MultiLabelSoftMarginLoss()(p, y[:, None, :])  # what upstream runs
    quirk = L.cpsp_weakly_class_loss(p, y, broadcast_quirk=True)
    assert quirk.item() == pytest.approx(torch_upstream.item(), rel=1e-12)
    assert abs(quirk.item() - L.cpsp_weakly_class_loss(p, y).item()) > 1e-4


def test_psp_prob_labels_average_seconds():
    labels = torch.zeros(1, 10, 3)
    labels[0, :, 2] = 1
    labels[0, 4:7, 2] = 0
    labels[0, 4:7, 1] = 1  # class 1 for 3 of 10 seconds
    assert torch.allclose(L.psp_prob_labels(labels), torch.tensor([[0.0, 0.3, 0.7]]))
