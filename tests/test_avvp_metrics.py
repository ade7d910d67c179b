"""Official AVVP metrics on hand-built videos; every expected F1 is worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from models.metrics.avvp import (
    AvvpScorer,
    event_level,
    extract_event,
    format_table,
    segment_level,
    video_predictions,
)

SPEECH, DOG, CAT = 0, 3, 4


def zeros() -> np.ndarray:
    return np.zeros((25, 10))


def rows(**spans) -> np.ndarray:
    """rows(c0=(2, 5)) → class 0 active on segments 2,3,4 (end exclusive)."""
    m = zeros()
    for key, pairs in spans.items():
        c = int(key[1:])
        for start, end in (pairs if isinstance(pairs[0], tuple) else [pairs]):
            m[c, start:end] = 1
    return m


def both(so_a, so_v, gt_a, gt_v):
    args = (so_a, so_v, so_a * so_v, gt_a, gt_v, gt_a * gt_v)
    return segment_level(*args), event_level(*args)


def test_extract_event_finds_maximal_runs_including_the_last_segment():
    events = extract_event([1, 1, 0, 1, 0, 0, 0, 0, 1, 1], n=7)
    assert [list(np.flatnonzero(e)) for e in events] == [[0, 1], [3], [8, 9]]
    assert all(e.shape == (10,) for e in events)
    assert extract_event([0] * 10, 0) == []
    assert [list(np.flatnonzero(e)) for e in extract_event([1] * 10, 0)] == [list(range(10))]


def test_perfect_prediction_scores_one_everywhere():
    gt_a = rows(c0=(0, 5), c3=(6, 10))
    gt_v = rows(c0=(2, 7))
    seg, evt = both(gt_a, gt_v, gt_a, gt_v)
    assert seg == (1.0, 1.0, 1.0, 1.0)
    assert evt == (1.0, 1.0, 1.0, 1.0)


def test_empty_video_with_empty_prediction_counts_as_all_true_negatives():
    seg, evt = both(zeros(), zeros(), zeros(), zeros())
    assert seg == (1.0, 1.0, 1.0, 1.0)
    assert evt == (1.0, 1.0, 1.0, 1.0)


def test_empty_ground_truth_with_a_prediction_scores_zero():
    # Audio predicts Dog on 2 segments, GT empty: TP 0, FP 2 → F1 0. Visual: nothing → 1.0.
    # AV: SO_av empty, GT_av empty → 1.0. Event@AV: class Dog TP 0, FP 2 → 0.
    seg, evt = both(rows(c3=(0, 2)), zeros(), zeros(), zeros())
    assert seg == (0.0, 1.0, 0.0, 1.0)
    assert evt == (0.0, 1.0, 0.0, 1.0)


def test_event_split_in_two():
    # GT audio Dog on segments 2..7 (one event of 6). Prediction 2,3 and 5,6,7 (gap at 4).
    # Segment: TP 5, FP 0, FN 1 → 2*5/(10+1) = 10/11.
    # Event: [2,4) IoU 2/6 < .5 → FP; [5,8) IoU 3/6 = .5 → TP; GT matched → FN 0.
    #   F1 = 2*1/(2*1+1+0) = 2/3.
    gt_a = rows(c3=(2, 8))
    so_a = rows(c3=((2, 4), (5, 8)))
    seg, evt = both(so_a, zeros(), gt_a, zeros())
    assert seg[0] == pytest.approx(10 / 11)
    assert evt[0] == pytest.approx(2 / 3)
    # Visual and audio-visual have nothing anywhere → 1.0; Event@AV = audio counts only.
    assert seg[1] == seg[3] == evt[1] == evt[3] == 1.0
    assert seg[2] == pytest.approx(10 / 11)
    assert evt[2] == pytest.approx(2 / 3)


@pytest.mark.parametrize("pred_end, expected", [
    (2, 1.0),   # GT [0,4), pred [0,2): IoU 2/4 = 0.5 exactly → TP, F1 1
    (1, 0.0),   # pred [0,1): IoU 1/4 → FP 1 and FN 1 → F1 0
])
def test_event_iou_of_exactly_one_half_is_a_hit(pred_end, expected):
    seg, evt = both(rows(c0=(0, pred_end)), zeros(), rows(c0=(0, 4)), zeros())
    assert evt[0] == pytest.approx(expected)


def test_event_iou_below_one_half_on_a_longer_event_misses():
    # GT [0,5), pred [0,2): IoU 2/5 = 0.4 → FP 1, FN 1 → 0. Segment: TP 2, FN 3 → 4/7.
    seg, evt = both(rows(c0=(0, 2)), zeros(), rows(c0=(0, 5)), zeros())
    assert evt[0] == 0.0
    assert seg[0] == pytest.approx(4 / 7)


def test_audio_only_event():
    # GT audio Car (1) on all 10 segments, no visual GT; audio predicted on 0..4 only.
    # Audio segment: TP 5, FN 5 → 10/15. Visual and AV: nothing → 1.0.
    # Event@AV segment: summed counts = audio's → 2/3.
    # Event level audio: pred [0,5) vs GT [0,10): IoU .5 → TP 1, FN 0 → 1.0.
    seg, evt = both(rows(c1=(0, 5)), zeros(), rows(c1=(0, 10)), zeros())
    assert seg == pytest.approx((2 / 3, 1.0, 2 / 3, 1.0))
    assert evt == pytest.approx((1.0, 1.0, 1.0, 1.0))


def test_visual_only_event_predicted_in_both_modalities():
    # GT visual Cheering (2) on 3..5; prediction puts it in audio AND visual on 3..5.
    # Audio: FP 3 → 0. Visual: 1.0. AV: SO_av = 3..5, GT_av empty → FP 3 → 0.
    # Event@AV segment: TP 3 (visual), FP 3 (audio), FN 0 → 6/9 = 2/3.
    # Event level: audio 1 FP event → 0; visual 1.0; AV → 0; Event@AV TP 1 FP 1 → 2/3.
    pred = rows(c2=(3, 6))
    seg, evt = both(pred, pred, zeros(), rows(c2=(3, 6)))
    assert seg == pytest.approx((0.0, 1.0, 2 / 3, 0.0))
    assert evt == pytest.approx((0.0, 1.0, 2 / 3, 0.0))


def test_per_video_score_is_the_mean_over_classes_with_a_prediction_or_ground_truth():
    # Speech perfect (F1 1), Dog predicted but absent (F1 0), the other 23 classes silent
    # (excluded) → audio score 0.5, not 1/25 or 24/25.
    seg, _ = both(rows(c0=(0, 3), c3=(5, 6)), zeros(), rows(c0=(0, 3)), zeros())
    assert seg[0] == pytest.approx(0.5)


def test_event_at_av_sums_counts_instead_of_averaging_f1s():
    # Speech: audio TP 4 (GT 0..3 predicted); visual GT 0..9, nothing predicted (FN 10).
    # Mean of two F1s would be (1 + 0)/2 = 0.5; summed counts give 2*4/(8+10) = 4/9.
    seg, _ = both(rows(c0=(0, 4)), zeros(), rows(c0=(0, 4)), rows(c0=(0, 10)))
    assert seg[2] == pytest.approx(4 / 9)
    assert seg[0] == 1.0 and seg[1] == 0.0


def test_video_predictions_gate_frames_by_the_video_level_decision():
    frame = np.full((10, 2, 25), 0.2)
    frame[:, 0, SPEECH] = 0.9     # audio frames confident for Speech ...
    frame[:, 1, DOG] = 0.5        # visual Dog exactly at the threshold
    frame[:4, 0, CAT] = 0.7
    gate = np.zeros(25)
    gate[SPEECH] = 0.3            # ... but the video-level prediction rejects Speech
    gate[DOG] = 0.5
    gate[CAT] = 0.99
    so_a, so_v = video_predictions(frame, gate)
    assert so_a.shape == so_v.shape == (25, 10)
    assert so_a[SPEECH].sum() == 0
    assert list(so_a[CAT]) == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert so_v[DOG].sum() == 10 and so_v.sum() == 10


def test_video_predictions_with_separate_modality_gates_as_cpsp():
    frame = np.full((10, 2, 25), 0.9)
    gate_a = np.zeros(25)
    gate_a[SPEECH] = 0.6
    gate_v = np.zeros(25)
    gate_v[DOG] = 0.6
    so_a, so_v = video_predictions(frame, gate_a, gate_v)
    assert so_a.sum() == 10 and so_a[SPEECH].sum() == 10
    assert so_v.sum() == 10 and so_v[DOG].sum() == 10


def test_scorer_averages_over_videos_and_builds_type_and_event_at_av():
    scorer = AvvpScorer()
    # Video 1: perfect → every score 1.
    gt = rows(c0=(0, 10))
    scorer.add(gt, gt, gt, gt, "v1")
    # Video 2: the audio-only case above: segment (2/3, 1, 2/3, 1), event all 1.
    scorer.add(rows(c1=(0, 5)), zeros(), rows(c1=(0, 10)), zeros(), "v2")
    s = scorer.summary()
    assert s["segment_audio"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert s["segment_visual"] == pytest.approx(100.0)
    assert s["segment_audio_visual"] == pytest.approx(100.0)
    assert s["segment_type_at_av"] == pytest.approx((100 * (1 + 2 / 3) / 2 + 100 + 100) / 3)
    assert s["segment_event_at_av"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert all(s[k] == pytest.approx(100.0) for k in s if k.startswith("event_"))
    table = format_table(s)
    assert "Type@AV" in table and "83.3" in table


def test_scorer_without_videos_refuses_to_summarise():
    with pytest.raises(ValueError):
        AvvpScorer().summary()


def test_per_class_diagnostics_sum_counts_over_videos():
    from models.metrics.avvp import per_class

    scorer = AvvpScorer()
    # Video 1: Speech audio TP 2, FP 1. Video 2: Speech audio FN 3. → F1 = 4/(4+1+3) = 50.
    scorer.add(rows(c0=(0, 3)), zeros(), rows(c0=(0, 2)), zeros())
    scorer.add(zeros(), zeros(), rows(c0=(5, 8)), zeros())
    table = per_class(scorer, ["Speech"] + [f"c{i}" for i in range(1, 25)])
    assert table["Speech"]["audio"] == pytest.approx(50.0)
    assert table["Speech"]["visual"] is None and table["c1"]["audio"] is None
