"""Training losses pinned to hand-computed values on the path `avel train` runs: the preset
(`get_preset`), the trainer family it names (`make_family`) and the family's `loss`.

The networks are replaced by test doubles that return fixed outputs, chosen so that every
term has a closed form; the expected totals below are worked out from the formulas in
shared/specs/psp_cpsp.md, not taken from the code.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from models.training.presets import get_preset
from models.training.trainer import make_family

LN2 = math.log(2)


class FixedOutputs(nn.Module):
    """A 'network' that returns the same tuple for every batch (its one parameter gives
    the dtype the families cast inputs to)."""

    def __init__(self, outputs: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self.outputs = outputs
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.outputs


# ---- AVVP: PSP / CPSP on LLP (spec §3.8) -------------------------------------------------

def _avvp_outputs(batch: int = 2, segments: int = 10, classes: int = 25) -> tuple[torch.Tensor, ...]:
    """PSP_MMIL_Net's 7-tuple with closed-form losses:
    - every probability 0.5, so each BCE term is ln 2 whatever the (smoothed) target;
    - each similarity row has logit 5 (cos 1 / 0.2) on its own segment, 0 elsewhere: with
      smoothing 0.1 over 10 'classes' the row loss is -0.9·(5 - Z) - 9·(0.1/9)·(-Z) = Z - 4.5,
      Z = ln(e^5 + 9);
    - video features: video 0 along e0, video 1 at cos 0.6 to it; the two videos share no
      label, so vcon = -ln(e^(1/0.2) / (e^(1/0.2) + e^(0.6/0.2))) = ln(1 + e^-2) per video."""
    half = torch.full((batch, classes), 0.5)
    frame = torch.full((batch, segments, 2, classes), 0.5)
    sims = torch.zeros(batch * segments, segments)
    mask = torch.arange(segments).repeat(batch)
    sims[torch.arange(batch * segments), mask] = 5.0
    x = torch.zeros(batch, segments, 2, 512)
    x[0, ..., 0] = 1.0
    x[1, ..., 0], x[1, ..., 1] = 0.6, 0.8
    return x, half, half.clone(), half.clone(), frame, sims, mask


def _avvp_batch(batch: int = 2, classes: int = 25) -> dict[str, torch.Tensor]:
    label = torch.zeros(batch, classes)
    label[0, 3] = 1.0  # video 0: class 3 only
    label[1, 7] = 1.0  # video 1: class 7 only (no shared label → each is the other's negative)
    return {"audio": torch.zeros(batch, 10, 128), "video_s": torch.zeros(batch, 80, 2048),
            "video_st": torch.zeros(batch, 10, 512), "label": label}


SIMILARITY = math.log(math.exp(5) + 9) - 4.5
VCON = math.log(1 + math.exp(-2))


@pytest.mark.parametrize("model, expected", [
    ("psp", 3 * LN2 + SIMILARITY),
    ("cpsp", 3 * LN2 + SIMILARITY + 1.0 * VCON),  # λ_v = 1 (run script)
], ids=["psp", "cpsp"])
def test_avvp_psp_cpsp_training_loss_is_bce_plus_similarity_plus_vcon(model, expected):
    family = make_family(get_preset("avvp", model), 25)
    loss, parts = family.loss(FixedOutputs(_avvp_outputs()), _avvp_batch(), 0)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert parts["similarity"] == pytest.approx(SIMILARITY, rel=1e-5)


# ---- AVE fully supervised, CPSP repo (spec §3.5) -----------------------------------------

def _ave_fully(classes: int = 4) -> tuple[FixedOutputs, dict[str, torch.Tensor]]:
    """Two videos of 10 segments: video 0 has its event (class 1) on segments 0-4, video 1
    (class 2) on all ten. Event logits 0 → BCE ln 2; category logits 0 → CE ln C; AVPS
    scores all 1 → p = 0.1 per segment against targets 0.2 (x5) / 0 (x5) for video 0 and
    0.1 (x10) for video 1 → MSE = (5·0.01 + 5·0.01) / 20 = 0.005."""
    b, t = 2, 10
    labels = torch.zeros(b, t, classes + 1)
    labels[0, :5, 1] = 1.0
    labels[0, 5:, classes] = 1.0  # background column
    labels[1, :, 2] = 1.0
    fusion = torch.randn(b, t, 256, generator=torch.Generator().manual_seed(0))
    outputs = (torch.zeros(b, t), torch.zeros(b, classes), torch.ones(b, t), fusion)
    batch = {"video": torch.zeros(b, t, 7, 7, 512), "audio": torch.zeros(b, t, 128),
             "labels": labels}
    return FixedOutputs(outputs), batch


AVPS = 0.005  # hand value above (targets carry a 1e-6 in their denominator: relative 1e-6)


def test_cpsp_fully_presets_carry_the_run_script_weights():
    # spec §3.5: "Run script (fully): λ_avps = 100, λ_vcon = 1, λ_scon = 0.01, all three flags on"
    for dataset in ("ave-fully", "vggsound-avel-fully"):
        opts = get_preset(dataset, "cpsp").options
        assert (opts["lambda_avps"], opts["lambda_scon"], opts["lambda_vcon"]) == (100.0, 0.01, 1.0)
        assert opts["avps"] and opts["scon"] and opts["vcon"]
        assert get_preset(dataset, "psp").options["lambda_avps"] == 100.0


def test_cpsp_fully_psp_loss_is_bce_plus_ce_plus_100_avps():
    classes = 4
    net, batch = _ave_fully(classes)
    family = make_family(get_preset("ave-fully", "psp"), classes)
    loss, parts = family.loss(net, batch, 0)
    assert parts["avps"] == pytest.approx(AVPS, rel=1e-4)
    assert float(loss) == pytest.approx(LN2 + math.log(classes) + 100 * AVPS, rel=1e-5)


def test_cpsp_fully_cpsp_loss_weights_each_term_as_the_run_script():
    classes = 4
    net, batch = _ave_fully(classes)
    family = make_family(get_preset("ave-fully", "cpsp"), classes)
    loss, parts = family.loss(net, batch, 0)
    assert parts["avps"] == pytest.approx(AVPS, rel=1e-4)
    # the contrastive terms have no closed form here; their weights do (λ_scon 0.01, λ_vcon 1)
    scon = 0.01 * parts["scon"] if math.isfinite(parts["scon"]) else 0.0
    expected = LN2 + math.log(classes) + 100 * AVPS + scon + 1.0 * parts["vcon"]
    assert float(loss) == pytest.approx(expected, rel=1e-5)
