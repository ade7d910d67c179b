"""Evaluation of cross-modality localization as ECCV18's `cmm_test.py` computes it.

For each test video the event segments (a contiguous run of length l) of one modality are
slid over the other modality; the start with the smallest summed distance is the prediction,
and a video counts as a hit only when that start equals the true start (exact match).
A2V: audio query, visual positions searched. V2A: visual query, audio positions searched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class CMMResult:
    a2v: float  # percentage of videos with an exact start hit, audio query
    v2a: float  # visual query
    videos: int  # videos scored (those with 1..9 positive segments)

    def original_print_order(self) -> tuple[float, float]:
        """The original prints (V2A, A2V) — its first counter comes from the visual-query loop."""
        return self.v2a, self.a2v


def best_start(dist: np.ndarray, seg: np.ndarray, query_is_audio: bool) -> int:
    """dist[i, j] = distance(visual i, audio j) for one video. Returns argmin over starts
    (ties -> first start, as np.argmin); scores are summed then cast to float32 as the original."""
    length = len(seg)
    n = dist.shape[0]
    scores = []
    for start in range(n - length + 1):
        if query_is_audio:
            total = sum(dist[start + i, seg[i]] for i in range(length))
        else:
            total = sum(dist[seg[i], start + i] for i in range(length))
        scores.append(total)
    return int(np.argmin(np.asarray(scores, dtype=np.float32)))


def cross_modal_localization(distances: np.ndarray, match: np.ndarray) -> CMMResult:
    """distances [N,10,10] (visual segment i vs audio segment j), match [N,10] 0/1 labels.

    Videos with all 10 segments positive are skipped (as the original); videos with none are
    skipped too (the original would crash on them; they do not occur in test_order_match)."""
    distances, match = np.asarray(distances), np.asarray(match)
    hits_a2v = hits_v2a = counted = 0
    for dist, labels in zip(distances, match):
        seg = np.flatnonzero(labels == 1)
        if len(seg) in (0, len(labels)):
            continue
        counted += 1
        hits_a2v += best_start(dist, seg, query_is_audio=True) == seg[0]
        hits_v2a += best_start(dist, seg, query_is_audio=False) == seg[0]
    if counted == 0:
        return CMMResult(0.0, 0.0, 0)
    return CMMResult(100.0 * hits_a2v / counted, 100.0 * hits_v2a / counted, counted)


def pairwise_distances(distance_fn: Callable, video: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """video [N,T,512], audio [N,T,128] -> [N,T,T] with [n,i,j] = distance_fn(video[n,i], audio[n,j])."""
    v = torch.as_tensor(video)
    a = torch.as_tensor(audio)
    t = v.shape[1]
    with torch.no_grad():
        d = distance_fn(v[:, :, None, :].expand(-1, t, t, -1), a[:, None, :, :].expand(-1, t, t, -1))
    return d.cpu().numpy()
