"""AVVP presets, evaluation wiring (gating + GT lookup by filename) and a tiny end-to-end fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from models.avvp_data import AvvpFeatures, DenseAnnotations, label_vector
from models.avvp_presets import avvp_preset
from models.avvp_training import evaluate, fit
from models.han import HAN


def test_presets_carry_the_original_hyperparameters():
    han = avvp_preset("han")
    assert (han.lr, han.lr_step, han.lr_gamma, han.epochs, han.batch_size, han.seed) == \
        (3e-4, 10, 0.1, 40, 16, 1)
    assert han.select_best and han.select_metric == "segment_type_at_av" and han.gate == "global"
    cpsp = avvp_preset("cpsp")
    assert cpsp.epochs == 12 and not cpsp.select_best and cpsp.gate == "modality"
    assert dict(cpsp.model_kwargs) == {"threshold": 0.090}
    assert avvp_preset("han", {"epochs": 2}).epochs == 2
    with pytest.raises(ValueError, match="unknown avvp hyperparameter"):
        avvp_preset("han", {"epoch": 2})
    with pytest.raises(ValueError, match="no model 'cmbs'"):
        avvp_preset("cmbs")


class FixedProbabilities(nn.Module):
    """Test double for a trained model: returns the probabilities stored for each clip,
    picked by the clip's audio feature value (clip k has audio filled with k)."""

    def __init__(self, outputs: list[tuple[torch.Tensor, ...]]) -> None:
        super().__init__()
        self.outputs = outputs
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, audio, visual_2d, visual_3d):
        k = int(audio[0, 0, 0].item())
        return tuple(t.unsqueeze(0) for t in self.outputs[k])


def _features(n: int):
    return lambda key: (np.full((10, 128), float(key[-1])), np.zeros((80, 2048)), np.zeros((10, 512)))


def test_evaluate_gates_predictions_and_looks_up_truth_by_filename():
    weak = pd.DataFrame({"filename": ["clip0000000_0_10", "clip0000001_0_10"],
                         "target": [label_vector(["Dog"]), label_vector(["Speech"])]})
    dataset = AvvpFeatures(weak, _features(2), key_of=lambda name: name[:11])
    annotations = DenseAnnotations(
        audio={"clip0000000_0_10": [{"label": "Dog", "onset": 0, "offset": 4}],
               "clip0000001_0_10": [{"label": "Speech", "onset": 0, "offset": 10}]},
        visual={})
    # Clip 0: Dog frames high in audio on 0..3, video-level Dog 0.9 → perfect audio (1.0).
    frame0 = torch.zeros(10, 2, 25)
    frame0[:4, 0, 3] = 0.8
    g0 = torch.zeros(25)
    g0[3] = 0.9
    # Clip 1: Speech frames high everywhere, but global Speech 0.4 → gated to nothing: F1 0.
    frame1 = torch.zeros(10, 2, 25)
    frame1[:, 0, 0] = 0.9
    g1 = torch.zeros(25)
    g1[0] = 0.4
    a1 = torch.zeros(25)
    a1[0] = 0.7               # ... while a modality gate (CPSP style) would let it through
    model = FixedProbabilities([(g0, g0, g0, frame0), (g1, a1, g1, frame1)])
    scorer = evaluate(model, dataset, annotations, gate="global")
    assert scorer.video_ids == ["clip0000000_0_10", "clip0000001_0_10"]
    assert scorer.per_video["seg_a"] == [1.0, 0.0]
    assert scorer.summary()["segment_audio"] == pytest.approx(50.0)
    scorer = evaluate(model, dataset, annotations, gate="modality")
    assert scorer.per_video["seg_a"] == [1.0, 1.0]


@pytest.mark.slow
def test_fit_runs_the_schedule_keeps_a_checkpoint_and_it_reloads(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"v{i:010d}_0_10" for i in range(6)]
    labels = [["Dog"] if i % 2 else ["Speech"] for i in range(6)]
    feats = {n[:11]: (rng.standard_normal((10, 128)), rng.standard_normal((80, 2048)),
                      rng.standard_normal((10, 512))) for n in names}
    weak = pd.DataFrame({"filename": names, "target": [label_vector(x) for x in labels]})
    train = AvvpFeatures(weak.iloc[:4], feats.__getitem__)
    val = AvvpFeatures(weak.iloc[4:], feats.__getitem__)
    annotations = DenseAnnotations(
        audio={n: [{"label": lab[0], "onset": 0, "offset": 10}] for n, lab in zip(names, labels)},
        visual={})
    preset = avvp_preset("han", {"epochs": 2, "lr_step": 1, "batch_size": 4})
    torch.manual_seed(preset.seed)
    model = HAN(with_unused=False)
    ckpt = tmp_path / "best.pt"
    result = fit(model, train, val, annotations, preset, checkpoint=ckpt)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert [row["lr"] for row in result.history] == pytest.approx([3e-4, 3e-5])
    kept = [row["epoch"] for row in result.history if row["kept"]]
    assert kept[0] == 1                      # the first epoch always beats "nothing yet"
    assert result.best_epoch == kept[-1]
    assert ckpt.is_file() and not list(tmp_path.glob(".*tmp"))
    assert set(torch.load(ckpt, weights_only=True)) == set(model.state_dict())
