"""AVE segment accuracy (compute_accuracy_supervised and the PSP repo's argmax) vs hand counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.metrics.ave import (
    chance_accuracy,
    compute_accuracy_supervised,
    cpsp_segment_predictions,
    per_class_accuracy,
    psp_segment_predictions,
    segment_accuracy,
)


def _onehot(ids, n):
    return torch.nn.functional.one_hot(torch.tensor(ids), n).double()


def test_cpsp_accuracy_counts_background_segments():
    # C = 3 foreground classes, background = 3. Two videos, 4 segments each.
    # video 0: category argmax = 1; event gate open on segments 0,1 (logit > 0)
    # video 1: category argmax = 2; gate open on segment 3 only
    event = torch.tensor([[2.0, 0.1, -1.0, -3.0], [-1.0, -0.5, -0.2, 4.0]])
    category = torch.tensor([[0.1, 0.9, 0.0], [0.0, 0.3, 0.8]])
    # predictions: [1,1,3,3] and [3,3,3,2]
    assert cpsp_segment_predictions(event, category, 3).tolist() == [[1, 1, 3, 3], [3, 3, 3, 2]]
    targets = [[1, 3, 3, 3], [3, 3, 2, 2]]
    # hand count: video 0 right on seg 0, 2, 3 (3 of 4); video 1 right on 0, 1, 3 (3 of 4)
    labels = torch.stack([_onehot(t, 4) for t in targets])
    acc = compute_accuracy_supervised(event, category, labels, bg_flag=3)
    assert acc.item() == pytest.approx(100 * 6 / 8)


def test_gate_is_strictly_greater_than_half():
    event = torch.zeros(1, 2)  # sigmoid(0) = 0.5 -> not an event
    category = torch.tensor([[5.0, 0.0]])
    assert cpsp_segment_predictions(event, category, 2).tolist() == [[2, 2]]


def test_psp_argmax_accuracy_by_hand():
    out = torch.tensor([[[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]])
    assert psp_segment_predictions(out).tolist() == [[1, 0, 2]]
    assert segment_accuracy(np.array([[1, 0, 2]]), np.array([[1, 2, 2]])) == pytest.approx(200 / 3)


def test_per_class_and_chance():
    pred = np.array([[0, 0, 2, 2]])
    target = np.array([[0, 1, 2, 2]])
    rows = per_class_accuracy(pred, target, ["a", "b", "background"])
    assert [(r["segments"], r["accuracy"]) for r in rows] == [(1, 100.0), (1, 0.0), (2, 100.0)]
    assert chance_accuracy(target) == 50.0  # background is 2 of 4 segments
