"""The official AVVP (LLP) evaluation: segment-level and event-level F1 per video.

Reimplements `utils/eval_metrics.py` + the scoring half of `main_avvp.eval` of
YapengTian/AVVP-ECCV20 so that numbers computed here can be compared with published ones.
Every rule that moves the score is kept on purpose:

- inputs are per-video [25, 10] 0/1 matrices (class x one-second segment);
- a class enters the per-video mean only if it has a prediction or a ground truth
  (TP+FP > 0 or TP+FN > 0); a video where no class enters scores 1.0 ("all true negatives");
- "Event@AV" sums the audio and visual TP/FP/FN per class before the F1 (it is not the
  mean of two F1s);
- events are maximal runs of 1s; a predicted event is a TP when its IoU with SOME ground
  truth event is >= 0.5 (else FP); a ground truth event is a FN when no predicted event
  reaches IoU >= 0.5 with it. TP therefore counts predicted events, FN counts GT events;
- the ten reported numbers are video means x100; Type@AV is the mean of the audio, visual
  and audio-visual means.

The module needs only numpy, so other tools can score predictions without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

N_CLASSES = 25
N_SEGMENTS = 10
THRESHOLD = 0.5
SELECTION_METRIC = "segment_type_at_av"  # what the original keeps the best epoch by

METRIC_NAMES = (
    "segment_audio", "segment_visual", "segment_audio_visual", "segment_type_at_av",
    "segment_event_at_av",
    "event_audio", "event_visual", "event_audio_visual", "event_type_at_av",
    "event_event_at_av",
)


def _class_f1s(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> list[float]:
    """F1 of each class that has a prediction or a ground truth, in class order."""
    scores = []
    for c in range(len(tp)):
        if tp[c] + fp[c] != 0 or tp[c] + fn[c] != 0:
            scores.append(2 * tp[c] / (2 * tp[c] + fn[c] + fp[c]))
    return scores


def _video_score(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Mean class F1 of one video, 1.0 when no class has a prediction or a ground truth."""
    scores = _class_f1s(tp, fp, fn)
    if not scores:
        return 1.0
    return sum(scores) / len(scores)


def _segment_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    tp = np.sum(pred * gt, axis=1)
    fn = np.sum((1 - pred) * gt, axis=1)
    fp = np.sum(pred * (1 - gt), axis=1)
    return tp, fp, fn


def segment_level(SO_a, SO_v, SO_av, GT_a, GT_v, GT_av) -> tuple[float, float, float, float]:  # noqa: N803
    """Segment-level F1 of one video → (audio, visual, Event@AV, audio-visual).

    The order is the original's: the third value is the summed-count "Event@AV" score, the
    fourth the audio-visual one.
    """
    tp_a, fp_a, fn_a = _segment_counts(SO_a, GT_a)
    tp_v, fp_v, fn_v = _segment_counts(SO_v, GT_v)
    tp_av, fp_av, fn_av = _segment_counts(SO_av, GT_av)
    return (_video_score(tp_a, fp_a, fn_a),
            _video_score(tp_v, fp_v, fn_v),
            _video_score(tp_a + tp_v, fp_a + fp_v, fn_a + fn_v),
            _video_score(tp_av, fp_av, fn_av))


def _one_hot_span(start: int, end: int, length: int) -> np.ndarray:
    span = np.zeros(length)
    span[start:end] = 1
    return span


def extract_event(seq: Sequence, n: int) -> list[np.ndarray]:
    """Maximal runs of 1s in a 0/1 row, each as a float 0/1 vector of the row's length.

    `n` (the class index) is unused, as in the original; it is kept for the signature.
    """
    del n
    values = list(seq)
    length = len(values)
    events = []
    i = 0
    while i < length:
        if values[i] == 1:
            start = i
            while i < length and values[i] == 1:
                i += 1
            events.append(_one_hot_span(start, i, length))
        else:
            i += 1
    return events


def _matches(x1: np.ndarray, x2: np.ndarray) -> bool:
    """IoU(x1, x2) >= 0.5, written without a division as the original does."""
    return bool(np.sum(x1 * x2) >= 0.5 * np.sum(x1 + x2 - x1 * x2))


def event_wise_metric(event_p: list[np.ndarray] | None,
                      event_gt: list[np.ndarray] | None) -> tuple[int, int, int]:
    """(TP, FP, FN) for one class and modality; None stands for "no event" as upstream."""
    predicted = event_p or []
    truth = event_gt or []
    tp = fp = fn = 0
    for p in predicted:
        if any(_matches(p, g) for g in truth):
            tp += 1
        else:
            fp += 1
    for g in truth:
        if not any(_matches(g, p) for p in predicted):
            fn += 1
    return tp, fp, fn


def _event_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    n_classes = pred.shape[0]
    tp, fp, fn = np.zeros(n_classes), np.zeros(n_classes), np.zeros(n_classes)
    for c in range(n_classes):
        predicted = extract_event(pred[c], c) if np.sum(pred[c]) != 0 else None
        truth = extract_event(gt[c], c) if np.sum(gt[c]) != 0 else None
        tp[c], fp[c], fn[c] = event_wise_metric(predicted, truth)
    return tp, fp, fn


def event_level(SO_a, SO_v, SO_av, GT_a, GT_v, GT_av) -> tuple[float, float, float, float]:  # noqa: N803
    """Event-level F1 of one video → (audio, visual, Event@AV, audio-visual), as upstream."""
    tp_a, fp_a, fn_a = _event_counts(SO_a, GT_a)
    tp_v, fp_v, fn_v = _event_counts(SO_v, GT_v)
    tp_av, fp_av, fn_av = _event_counts(SO_av, GT_av)
    return (_video_score(tp_a, fp_a, fn_a),
            _video_score(tp_v, fp_v, fn_v),
            _video_score(tp_a + tp_v, fp_a + fp_v, fn_a + fn_v),
            _video_score(tp_av, fp_av, fn_av))


def video_predictions(frame_prob: np.ndarray, gate_audio: np.ndarray,
                      gate_visual: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Segment predictions of one video → (SO_a, SO_v), each [25, 10] int.

    `frame_prob` is [10, 2, 25] (segment, modality 0 audio / 1 visual, class). Each frame
    decision (>= 0.5) is multiplied by a video-level gate per class: HAN gates both modalities
    with `global_prob >= 0.5`; the CPSP AVVP code gates audio with `a_prob >= 0.5` and visual
    with `v_prob >= 0.5` (pass both gates). Gates may be probabilities or 0/1 decisions.
    """
    frame_prob = np.asarray(frame_prob)
    if gate_visual is None:
        gate_visual = gate_audio
    o_a = (np.asarray(gate_audio).reshape(1, -1) >= THRESHOLD).astype(np.int_)
    o_v = (np.asarray(gate_visual).reshape(1, -1) >= THRESHOLD).astype(np.int_)
    pa = (frame_prob[:, 0, :] >= THRESHOLD).astype(np.int_) * o_a
    pv = (frame_prob[:, 1, :] >= THRESHOLD).astype(np.int_) * o_v
    return pa.T, pv.T


@dataclass
class AvvpScorer:
    """Collects per-video scores and reduces them to the ten published numbers."""

    per_video: dict[str, list[float]] = field(
        default_factory=lambda: {k: [] for k in ("seg_a", "seg_v", "seg_event", "seg_av",
                                                  "evt_a", "evt_v", "evt_event", "evt_av")})
    video_ids: list[str] = field(default_factory=list)
    # Segment counts summed over videos per class: {"audio"|"visual"|"audio_visual": [3, C]}.
    class_counts: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, SO_a, SO_v, GT_a, GT_v, video_id: str = "") -> None:  # noqa: N803
        """Score one video; SO_av and GT_av are the products, as in the original."""
        so_a, so_v = np.asarray(SO_a), np.asarray(SO_v)
        gt_a, gt_v = np.asarray(GT_a), np.asarray(GT_v)
        so_av, gt_av = so_a * so_v, gt_a * gt_v
        seg = segment_level(so_a, so_v, so_av, gt_a, gt_v, gt_av)
        evt = event_level(so_a, so_v, so_av, gt_a, gt_v, gt_av)
        for key, value in zip(("seg_a", "seg_v", "seg_event", "seg_av"), seg):
            self.per_video[key].append(float(value))
        for key, value in zip(("evt_a", "evt_v", "evt_event", "evt_av"), evt):
            self.per_video[key].append(float(value))
        self.video_ids.append(video_id)
        for key, (p, g) in (("audio", (so_a, gt_a)), ("visual", (so_v, gt_v)),
                            ("audio_visual", (so_av, gt_av))):
            counts = np.stack(_segment_counts(p, g))
            self.class_counts[key] = self.class_counts.get(key, 0) + counts

    def __len__(self) -> int:
        return len(self.video_ids)

    def summary(self) -> dict[str, float]:
        """The ten numbers (x100, unrounded), keyed by METRIC_NAMES."""
        if not self.video_ids:
            raise ValueError("no video was scored")
        m = {k: 100 * float(np.mean(np.array(v))) for k, v in self.per_video.items()}
        return {
            "segment_audio": m["seg_a"],
            "segment_visual": m["seg_v"],
            "segment_audio_visual": m["seg_av"],
            "segment_type_at_av": (m["seg_av"] + m["seg_a"] + m["seg_v"]) / 3.0,
            "segment_event_at_av": m["seg_event"],
            "event_audio": m["evt_a"],
            "event_visual": m["evt_v"],
            "event_audio_visual": m["evt_av"],
            "event_type_at_av": (m["evt_av"] + m["evt_a"] + m["evt_v"]) / 3.0,
            "event_event_at_av": m["evt_event"],
        }


def per_class(scorer: AvvpScorer, categories: Sequence[str] | None = None) -> dict[str, dict]:
    """Diagnostics, not an official number: per class, segment-level F1 x100 from TP/FP/FN
    summed over all videos (None where the class is neither predicted nor annotated)."""
    result: dict[str, dict] = {}
    for key, counts in scorer.class_counts.items():
        tp, fp, fn = counts
        for c in range(counts.shape[1]):
            name = categories[c] if categories is not None else str(c)
            denom = 2 * tp[c] + fp[c] + fn[c]
            f1 = None if denom == 0 else float(100 * 2 * tp[c] / denom)
            result.setdefault(name, {})[key] = f1
    return result


def format_table(summary: dict[str, float]) -> str:
    """The ten numbers as a plain-text table, one decimal like the original prints."""
    rows = [("Audio", "audio"), ("Visual", "visual"), ("Audio-Visual", "audio_visual"),
            ("Type@AV", "type_at_av"), ("Event@AV", "event_at_av")]
    lines = [f"{'':<14}{'Segment':>9}{'Event':>9}"]
    for title, key in rows:
        lines.append(f"{title:<14}{summary['segment_' + key]:>9.1f}{summary['event_' + key]:>9.1f}")
    return "\n".join(lines)
