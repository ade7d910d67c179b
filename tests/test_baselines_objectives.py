"""Prediction rules and label derivations of the original training scripts, on hand-built cases."""

from __future__ import annotations

import torch

from models.training.baseline_objectives import OBJECTIVES, segment_targets, threshold_rule


def test_segment_targets_follow_the_cpsp_derivation():
    labels = torch.zeros(1, 10, 29)
    labels[0, :, 28] = 1
    labels[0, 4:7, 28], labels[0, 4:7, 11] = 0, 1
    is_event, video_class = segment_targets(labels)
    assert is_event.tolist() == [[0, 0, 0, 0, 1, 1, 1, 0, 0, 0]]
    assert video_class.tolist() == [11]


def test_threshold_rule_predicts_background_where_the_event_logit_is_not_positive():
    is_event = torch.tensor([[2.0, -1.0, 0.0, 0.1]])  # sigmoid(0) = 0.5 is not > 0.5
    class_logits = torch.zeros(1, 28)
    class_logits[0, 5] = 3.0
    assert threshold_rule(is_event, class_logits, background=28).tolist() == [[5, 28, 28, 5]]


def test_cmbs_weak_default_thresholds_the_gate_once():
    av_gate = torch.tensor([[0.9, 0.2, 0.6]])
    raw = torch.zeros(1, 29)
    raw[0, 3] = 1.0
    out = (av_gate, raw, torch.softmax(raw, -1))
    assert OBJECTIVES["cmbs-weakly"].predict(out, {}).tolist() == [[3, 28, 3]]


def test_cmbs_weak_original_rule_predicts_the_video_class_everywhere():
    """sigmoid(av_gate) > 0.5 for any gate in (0, 1): the original's double sigmoid."""
    av_gate = torch.tensor([[0.9, 0.01, 0.3]])
    raw = torch.zeros(1, 29)
    raw[0, 3] = 1.0
    out = (av_gate, raw, torch.softmax(raw, -1))
    pred = OBJECTIVES["cmbs-weakly"].predict(out, {"cmbs_weak_double_sigmoid": True})
    assert pred.tolist() == [[3, 3, 3]]


def test_eccv18_fully_loss_is_multilabel_soft_margin_on_probabilities():
    """Sigmoid of softmax outputs: a perfect one-hot prediction still costs log terms."""
    probs = torch.zeros(1, 1, 29)
    probs[0, 0, 4] = 1.0
    labels = probs.clone()
    loss = OBJECTIVES["eccv18-fully"].loss(probs, {"labels": labels}, {})
    log_sig = torch.nn.functional.logsigmoid
    expected = -(log_sig(torch.tensor(1.0)) + 28 * log_sig(torch.tensor(-0.0))) / 29
    assert torch.isclose(loss, expected)


def test_cmran_is_event_output_is_transposed_before_use():
    is_event = torch.full((10, 2, 1), -5.0)
    is_event[3, 1, 0] = 5.0  # video 1, segment 3
    classes = torch.zeros(2, 28)
    classes[:, 2] = 1.0
    pred = OBJECTIVES["cpsp-fully"].predict((is_event, classes), {})
    assert pred.shape == (2, 10) and pred[1, 3] == 2 and (pred[0] == 28).all()
