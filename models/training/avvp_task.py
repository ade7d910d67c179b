"""The "avvp" trainer family (contract in models/training/trainer.py) for HAN and PSP/CPSP on LLP.

Batches come from `models.training.avvp_data.AvvpFeatures` built with dense annotations, so every
eval sample carries its own ground truth (`gt_a`, `gt_v`) and `summarize` needs nothing
else. `predict` turns the model's probabilities into the gated [25, 10] segment decisions
of the original evaluation; `summarize` scores them with `models.metrics.avvp`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from models.cpsp_avvp import smoothed_cross_entropy, video_contrastive
from models.han import mmil_loss_terms
from models.metrics.avvp import SELECTION_METRIC, AvvpScorer, video_predictions
from models.registry import build
from models.training.preset import Preset


def probabilities(outputs: tuple) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(global, audio, visual, frame) from a HAN 4-tuple or a PSP/CPSP 7-tuple."""
    if len(outputs) == 4:
        return outputs
    if len(outputs) == 7:
        return outputs[1], outputs[2], outputs[3], outputs[4]
    raise ValueError(f"unexpected AVVP model output of length {len(outputs)}")


def segment_decisions(outputs: tuple, gate: str) -> tuple[np.ndarray, np.ndarray]:
    """Gated 0/1 decisions (SO_a, SO_v), each [B, 25, 10], from a batch of model outputs."""
    global_prob, a_prob, v_prob, frame_prob = (t.detach().float().cpu().numpy()
                                               for t in probabilities(outputs))
    so_a, so_v = [], []
    for b in range(frame_prob.shape[0]):
        if gate == "global":
            pa, pv = video_predictions(frame_prob[b], global_prob[b])
        elif gate == "modality":
            pa, pv = video_predictions(frame_prob[b], a_prob[b], v_prob[b])
        else:
            raise ValueError(f"gate must be 'global' or 'modality', not {gate!r}")
        so_a.append(pa)
        so_v.append(pv)
    return np.stack(so_a), np.stack(so_v)


def avvp_loss(outputs: tuple, target: Tensor, options: Mapping[str, Any]) -> tuple[Tensor, dict[str, float]]:
    """The loss `avel train --task avvp` optimises, and its named parts: HAN's three BCE terms
    (`models.han.mmil_loss_terms`); PSP adds the segment similarity term
    (`smoothed_cross_entropy`), CPSP also the video contrastive term × lambda_v, skipped when
    NaN as upstream. `options["loss"]` is han|psp|cpsp."""
    global_prob, a_prob, v_prob, _ = probabilities(outputs)
    target = target.to(global_prob.dtype)
    terms = mmil_loss_terms(global_prob, a_prob, v_prob, target)
    loss = terms["audio"] + terms["visual"] + terms["global"]
    parts = {f"bce_{k}": float(v.detach()) for k, v in terms.items()}
    if options["loss"] in ("psp", "cpsp"):
        _, _, _, _, _, sims, mask = outputs
        sim = smoothed_cross_entropy(sims, mask)
        loss = loss + sim
        parts["similarity"] = float(sim.detach())
    if options["loss"] == "cpsp":
        vcon = video_contrastive(outputs[0], target, options["vcon_ratio"], options["vcon_eta"])
        if not torch.isnan(vcon):  # no negative (or positive) in the batch: skipped upstream
            loss = loss + options["lambda_v"] * vcon
        parts["vcon"] = float(vcon.detach())
    return loss, parts


class AvvpFamily:
    selection_metric = SELECTION_METRIC

    def __init__(self, preset: Preset, num_classes: int, class_names: list[str]) -> None:
        self.preset = preset
        self.num_classes = num_classes
        self.class_names = class_names
        self.opt: dict[str, Any] = dict(preset.options)
        if self.opt.get("loss") not in ("han", "psp", "cpsp"):
            raise ValueError(f"avvp preset needs options.loss han|psp|cpsp, got {self.opt.get('loss')!r}")

    def build_model(self) -> nn.Module:
        kwargs = {"n_classes": self.num_classes}
        if self.preset.threshold is not None and self.opt["loss"] != "han":
            kwargs["threshold"] = self.preset.threshold
        return build(self.preset.arch, **kwargs)

    @staticmethod
    def _forward(model: nn.Module, batch: dict[str, Tensor]) -> tuple:
        dtype = next(model.parameters()).dtype
        return model(batch["audio"].to(dtype), batch["video_s"].to(dtype), batch["video_st"].to(dtype))

    def loss(self, model: nn.Module, batch: dict[str, Tensor], epoch: int
             ) -> tuple[Tensor, dict[str, float]]:
        return avvp_loss(self._forward(model, batch), batch["label"], self.opt)

    def predict(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
        if "gt_a" not in batch:
            raise ValueError("avvp evaluation needs datasets built with dense annotations")
        so_a, so_v = segment_decisions(self._forward(model, batch), self.opt["gate"])
        return {"so_a": so_a, "so_v": so_v, "gt_a": batch["gt_a"].cpu().numpy(),
                "gt_v": batch["gt_v"].cpu().numpy(), "index": batch["index"].cpu().numpy()}

    def summarize(self, collected: dict[str, np.ndarray]) -> dict[str, float]:
        scorer = AvvpScorer()
        for so_a, so_v, gt_a, gt_v in zip(collected["so_a"], collected["so_v"],
                                          collected["gt_a"], collected["gt_v"]):
            scorer.add(so_a, so_v, gt_a, gt_v)
        return scorer.summary()
