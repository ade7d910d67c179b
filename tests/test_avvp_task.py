"""The "avvp" trainer family and presets: original hyperparameters, evaluation wiring
(gating + ground truth carried by each sample), and a tiny run of the generic trainer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from models.training.avvp_data import AvvpFeatures, DenseAnnotations, label_vector
from models.training.presets import get_preset, with_overrides
from models.training.trainer import Trainer, make_family


def test_presets_carry_the_original_hyperparameters():
    han = get_preset("avvp", "han")
    assert (han.lr, han.optimizer, han.epochs, han.batch_size, han.eval_batch_size, han.seed) == \
        (3e-4, "adam", 40, 16, 1, 1)
    # StepLR(step 10, gamma 0.1) over 40 epochs = milestones 10, 20, 30.
    assert han.milestones == (10, 20, 30) and han.gamma == 0.1
    assert han.options["gate"] == "global" and han.select_on == "val"
    assert make_family(han, 25).selection_metric == "segment_type_at_av"
    cpsp = get_preset("avvp", "cpsp")
    assert cpsp.epochs == 12 and cpsp.threshold == pytest.approx(0.090)
    assert cpsp.options == {"loss": "cpsp", "gate": "modality", "lambda_v": 1.0,
                            "vcon_ratio": 0.9, "vcon_eta": 0.2, "original_dir": None}
    assert get_preset("avvp", "psp").options["loss"] == "psp"


def test_family_builds_the_registered_networks():
    for model, cls_name in (("han", "HAN"), ("psp", "PSPMMIL"), ("cpsp", "PSPMMIL")):
        net = make_family(get_preset("avvp", model), 25).build_model()
        assert type(net).__name__ == cls_name
    assert make_family(get_preset("avvp", "cpsp"), 25).build_model().thr_val == pytest.approx(0.09)


class FixedProbabilities(nn.Module):
    """Test double for a trained model: returns the probabilities stored for clip k, where
    clip k's audio features are filled with the value k."""

    def __init__(self, outputs: list[tuple[torch.Tensor, ...]]) -> None:
        super().__init__()
        self.outputs = outputs
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, audio, visual_2d, visual_3d):
        rows = [self.outputs[int(a[0, 0].item())] for a in audio]
        return tuple(torch.stack([r[i] for r in rows]) for i in range(4))


def _zeros_but(shape, index, value):
    t = torch.zeros(shape)
    t[index] = value
    return t


def test_evaluation_gates_decisions_and_scores_against_each_clips_truth(tmp_path):
    names = ["clip0000000_0_10", "clip0000001_0_10"]
    weak = pd.DataFrame({"filename": names,
                         "target": [label_vector(["Dog"]), label_vector(["Speech"])]})
    annotations = DenseAnnotations(
        audio={names[0]: [{"label": "Dog", "onset": 0, "offset": 4}],
               names[1]: [{"label": "Speech", "onset": 0, "offset": 10}]},
        visual={})
    lookup = lambda key: (np.full((10, 128), float(key[-1])), np.zeros((80, 2048)),  # noqa: E731
                          np.zeros((10, 512)))
    dataset = AvvpFeatures(weak, lookup, key_of=lambda n: n[:11], annotations=annotations)
    # Clip 0: audio Dog frames 0.8 on 0..3 and video-level Dog 0.9 → perfect audio (1.0).
    frame0 = _zeros_but((10, 2, 25), (slice(0, 4), 0, 3), 0.8)
    g0 = _zeros_but(25, 3, 0.9)
    # Clip 1: audio Speech frames 0.9 everywhere, global Speech 0.4 → HAN gates it all away
    # (F1 0); its a_prob 0.7 lets it through under the CPSP per-modality gate (F1 1).
    frame1 = _zeros_but((10, 2, 25), (slice(None), 0, 0), 0.9)
    g1 = _zeros_but(25, 0, 0.4)
    a1 = _zeros_but(25, 0, 0.7)
    model = FixedProbabilities([(g0, g0, g0, frame0), (g1, a1, g1, frame1)])
    for model_name, gate, expected in (("han", "global", 50.0), ("cpsp", "modality", 100.0)):
        preset = get_preset("avvp", model_name)
        assert preset.options["gate"] == gate
        trainer = Trainer(make_family(preset, 25), preset, tmp_path, device="cpu", progress=False)
        metrics, collected = trainer.evaluate(model, dataset)
        assert collected["so_a"].shape == (2, 25, 10)
        assert metrics["segment_audio"] == pytest.approx(expected)
        # No visual truth and no visual frame above 0.5 → visual 100 for both clips.
        assert metrics["segment_visual"] == pytest.approx(100.0)


@pytest.mark.slow
def test_generic_trainer_runs_han_and_writes_metrics(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"v{i:010d}_0_10" for i in range(6)]
    labels = [["Dog"] if i % 2 else ["Speech"] for i in range(6)]
    feats = {n[:11]: (rng.standard_normal((10, 128)), rng.standard_normal((80, 2048)),
                      rng.standard_normal((10, 512))) for n in names}
    weak = pd.DataFrame({"filename": names, "target": [label_vector(x) for x in labels]})
    annotations = DenseAnnotations(
        audio={n: [{"label": lab[0], "onset": 0, "offset": 10}] for n, lab in zip(names, labels)},
        visual={})
    train = AvvpFeatures(weak.iloc[:4], feats.__getitem__, annotations=annotations)
    val = AvvpFeatures(weak.iloc[4:], feats.__getitem__, annotations=annotations)
    preset = with_overrides(get_preset("avvp", "han"), {"epochs": 2, "milestones": [1], "batch_size": 4})
    trainer = Trainer(make_family(preset, 25), preset, tmp_path, device="cpu", progress=False)
    result = trainer.fit(train, val)
    lrs = [row["lr"] for row in result["history"]]
    assert lrs == pytest.approx([3e-4, 3e-5])
    assert all("val_segment_type_at_av" in row and "train_bce_visual" in row
               for row in result["history"])
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["best"]["metric"] == "val_segment_type_at_av"
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
