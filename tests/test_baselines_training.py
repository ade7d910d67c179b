"""The standalone loop (`models.training.baseline_fit`), which follows a preset exactly (fixed batch
order, per-iteration schedule, background-only videos, match split for CMM), on tiny
AVE-format feature directories. Every baseline through the generic trainer is in
test_baselines_pipeline.py."""

from __future__ import annotations

import json

import pytest
import torch

from models.training.baseline_data import load_ave_dir, video_labels
from models.training.baseline_fit import train_baseline
from models.training.baseline_hparams import get_baseline_hparams
from tests.fixtures_baselines import write_ave_dir

FAST = {"epochs": 2, "batch_size": 3, "eval_batch_size": 4, "eval_every": 2, "dtype": "float32"}


@pytest.fixture(scope="module")
def ave(tmp_path_factory):
    root = write_ave_dir(tmp_path_factory.mktemp("ave"), n=9, with_noisy=True)
    return load_ave_dir(root, with_noisy=True)


@pytest.mark.parametrize("model,task", [("av_att_weak", "ave-weakly"), ("avel", "ave-fully"),
                                        ("cmm", "ave-cmm")])
def test_standalone_loop_trains_and_writes_metrics(model, task, ave, tmp_path):
    metrics = train_baseline(model, task, ave, tmp_path, FAST, device="cpu")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["model"] == model and len(saved["history"]) == 2
    assert all(h["loss"] == h["loss"] for h in saved["history"])  # not NaN
    # percentages of what was counted: hits of 3 test videos (CMM) or of their 30 seconds
    percent, total = ((metrics["test_a2v"], 3) if task == "ave-cmm"
                      else (metrics["test_accuracy"], 30))
    hits = percent * total / 100
    assert hits == pytest.approx(round(hits), abs=1e-6) and 0 <= round(hits) <= total
    if task == "ave-cmm":
        assert metrics["test_videos"] == 3
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert checkpoint["model"] == model and checkpoint["state_dict"]


def test_a_baseline_learns_the_tiny_task(tmp_path):
    """Classes are shifted in audio and video: AVSDN's loss must fall over a few epochs."""
    ave = load_ave_dir(write_ave_dir(tmp_path / "d", n=12, seed=3))
    metrics = train_baseline("avsdn", "ave-fully", ave, tmp_path / "run",
                             {**FAST, "epochs": 5}, device="cpu")
    losses = [h["loss"] for h in metrics["history"]]
    assert losses[-1] < 0.7 * losses[0]


def test_eccv18_weak_training_appends_background_videos_and_drops_the_last_batch(ave):
    """9 videos -> 3 train + 3 background-only; batch 4 with drop_last -> one batch of 4,
    the last two (background) videos never seen, as in the original."""
    import numpy as np

    from models.training.baseline_fit import _batches, _Pool
    pool = _Pool(ave, ave.orders["train"], noisy=True)
    assert len(pool) == 6 and pool.video_labels[-3:, 28].tolist() == [1, 1, 1]
    batches = list(_batches(len(pool), 4, shuffle=False, drop_last=True, rng=np.random.default_rng(0)))
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3]]


def test_video_labels_derived_when_mil_file_missing(ave):
    ave2 = type(ave)(ave.audio, ave.video, ave.labels, ave.orders)
    assert (video_labels(ave2) == ave.mil_labels).all()


def test_presets_keep_original_values_and_default_to_val_selection():
    cmbs = get_baseline_hparams("ave-fully", "cmbs")
    assert (cmbs.lr, cmbs.clip_grad_norm, cmbs.epochs, cmbs.seed) == (7e-4, 0.5, 200, 43)
    assert cmbs.select_on == "val" and cmbs.original_select_on == "test"
    assert get_baseline_hparams("ave-fully", "av_att").schedule.step_size == 15000
    assert get_baseline_hparams("ave-weakly", "cmbs").options["cmbs_weak_double_sigmoid"] is False
    with pytest.raises(ValueError, match="unknown preset field"):
        get_baseline_hparams("ave-fully", "av_att", {"learning_rate": 1})
