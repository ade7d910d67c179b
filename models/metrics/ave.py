"""AVE segment-level accuracy, exactly as the original evaluation code counts it: every one
of the B·10 segments is scored, background segments included (background = class C).

`cpsp_*` follows `compute_accuracy_supervised` (fully and weakly CPSP scripts): a segment is
predicted as the video's argmax category when sigmoid(event logit) > 0.5, else background.
`psp_*` follows the PSP repo's `compute_acc`: a per-segment argmax over the C+1 outputs.
Any model family may reuse these with its own predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor


def cpsp_segment_predictions(event_logits: Tensor, category_logits: Tensor, bg_flag: int) -> Tensor:
    """[B,T] class ids: argmax category where sigmoid(event) > 0.5, else `bg_flag`."""
    is_event = event_logits.sigmoid() > 0.5
    event_class = category_logits.argmax(dim=-1)
    pred = is_event.long() * event_class[:, None]
    pred[~is_event] = bg_flag
    return pred


def compute_accuracy_supervised(event_logits: Tensor, category_logits: Tensor, labels: Tensor,
                                bg_flag: int = 28) -> Tensor:
    """Percent of segments whose prediction equals labels.argmax(-1) over the C+1 columns."""
    targets = labels.argmax(dim=-1)
    pred = cpsp_segment_predictions(event_logits, category_logits, bg_flag)
    correct = pred.eq(targets)
    return correct.sum().double() * (100.0 / correct.numel())


def psp_segment_predictions(scores: Tensor) -> Tensor:
    """PSP repo: per-segment argmax over the C+1 outputs (logits or probabilities)."""
    return scores.argmax(dim=-1)


def segment_accuracy(pred: np.ndarray | Tensor, target: np.ndarray | Tensor) -> float:
    """Percent of equal entries: the global per-segment accuracy (== the sample-weighted mean
    of per-batch accuracies the original loops print)."""
    p, t = np.asarray(pred), np.asarray(target)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} != target shape {t.shape}")
    return float((p == t).mean() * 100.0) if p.size else float("nan")


def per_class_accuracy(pred: np.ndarray, target: np.ndarray, class_names: Sequence[str]
                       ) -> list[dict[str, object]]:
    """Segment accuracy restricted to the segments whose true class is each class (recall),
    one row per class including background; `segments` = how many there were."""
    p, t = np.asarray(pred).ravel(), np.asarray(target).ravel()
    rows = []
    for k, name in enumerate(class_names):
        sel = t == k
        n = int(sel.sum())
        rows.append({"class_id": k, "class": name, "segments": n,
                     "accuracy": float((p[sel] == k).mean() * 100.0) if n else float("nan")})
    return rows


def chance_accuracy(target: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent target class (the honest 'chance')."""
    t = np.asarray(target).ravel()
    if not t.size:
        return float("nan")
    return float(np.bincount(t).max() / t.size * 100.0)
