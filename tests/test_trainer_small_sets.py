"""A training split smaller than one batch with drop_last must not 'train' silently."""

from __future__ import annotations

import numpy as np
import pytest

from models.training.ave_data import ArrayAVEDataset
from models.training.presets import get_preset, with_overrides
from models.training.trainer import Trainer, make_family


def tiny_set(n: int) -> ArrayAVEDataset:
    rng = np.random.default_rng(0)
    labels = np.zeros((n, 10, 5), np.float32)
    labels[:, :, 0] = 1.0
    return ArrayAVEDataset(rng.normal(size=(n, 10, 128)).astype(np.float32),
                           rng.normal(size=(n, 10, 7, 7, 512)).astype(np.float32), labels)


def trainer_for(tmp_path, batch_size: int) -> Trainer:
    preset = with_overrides(get_preset("ave-fully", "av_att"), {"batch_size": batch_size, "epochs": 1})
    return Trainer(make_family(preset, 4), preset, tmp_path, device="cpu", progress=False)


def test_fewer_clips_than_a_dropped_last_batch_is_an_error(tmp_path):
    trainer = trainer_for(tmp_path, batch_size=64)
    assert trainer.preset.drop_last
    model = trainer._model()
    with pytest.raises(ValueError, match=r"training set \(6 clips\) is smaller than one batch.*"
                                         r"--set batch_size=6\)"):
        trainer.train_epoch(model, trainer._optimizer(model), tiny_set(6), 0)


def test_a_small_batch_trains(tmp_path):
    trainer = trainer_for(tmp_path, batch_size=2)
    model = trainer._model()
    out = trainer.train_epoch(model, trainer._optimizer(model), tiny_set(6), 0)
    assert np.isfinite(out["train_loss"])
