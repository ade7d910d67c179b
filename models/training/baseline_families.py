"""The baselines as families of the generic trainer (contract in models/training/trainer.py).

`baseline` drives any segment-localisation baseline through its `Objective` (loss and
prediction rule of its original script); `baseline-cmm` trains and scores the CMM
cross-modality localization network on the same AVE batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from models.baselines.cmm import contrastive_loss
from models.metrics.ave import chance_accuracy, segment_accuracy
from models.metrics.cmm import cross_modal_localization
from models.registry import build
from models.training.baseline_objectives import OBJECTIVES
from models.training.preset import Preset

# how each network is told the number of classes: (keyword, offset added to foreground C)
CLASS_ARG = {"av_att": ("tagset_size", 1), "av_att_weak": ("tagset_size", 1), "dmrn": ("tagset_size", 1),
             "avel": ("category_num", 0), "avsdn": ("category_num", 0), "cmran": ("category_num", 0),
             "cmbs": ("category_num", 0)}


def with_video_labels(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Adds `video_labels` [B,C+1] (the MIL label): the event classes present, or background
    for a video without any event."""
    if "video_labels" in batch:
        return batch
    fg = batch["labels"][..., :-1].amax(dim=1)
    bg = (fg.amax(dim=-1, keepdim=True) <= 0).to(fg.dtype)
    return {**batch, "video_labels": torch.cat([fg, bg], dim=-1)}


def _cast(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    dtype = next(model.parameters()).dtype
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in batch.items()}


class BaselineFamily:
    selection_metric = "accuracy"

    def __init__(self, preset: Preset, num_classes: int, class_names: list[str]) -> None:
        self.preset, self.num_classes, self.class_names = preset, num_classes, class_names
        self.options: dict[str, Any] = dict(preset.options)
        self.objective = OBJECTIVES[self.options["objective"]]

    def build_model(self) -> nn.Module:
        kwargs = dict(self.options.get("model_kwargs", {}))
        key, offset = CLASS_ARG[self.preset.arch]
        kwargs[key] = self.num_classes + offset
        return build(self.preset.arch, **kwargs)

    def loss(self, model: nn.Module, batch: dict[str, Tensor], epoch: int) -> tuple[Tensor, dict[str, float]]:
        batch = with_video_labels(_cast(model, batch))
        out = self.objective.forward(model, batch)
        return self.objective.loss(out, batch, self.options), {}

    def predict(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
        batch = with_video_labels(_cast(model, batch))
        pred = self.objective.predict(self.objective.forward(model, batch), self.options)
        out = {"pred": pred.cpu().numpy(), "target": batch["labels"].argmax(-1).cpu().numpy()}
        if "index" in batch:
            out["index"] = batch["index"].cpu().numpy()
        return out

    def summarize(self, collected: dict[str, np.ndarray]) -> dict[str, float]:
        return {"accuracy": segment_accuracy(collected["pred"], collected["target"]),
                "chance": chance_accuracy(collected["target"])}


class CMMFamily:
    """Pairs are the B*10 (visual, audio) segments of a batch of videos; a pair matches when
    its segment is an audio-visual event (what labels_closs.h5 holds). Visual input is the
    global average of the 7x7 map, as visual_feature_vec.h5. Selection: A2V hit rate."""

    selection_metric = "a2v"

    def __init__(self, preset: Preset, num_classes: int, class_names: list[str]) -> None:
        self.preset, self.num_classes = preset, num_classes
        self.margin = float(preset.options.get("margin", 2.0))

    def build_model(self) -> nn.Module:
        return build("cmm")

    @staticmethod
    def _pairs(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        video = batch["video"]
        vec = video.mean(dim=(2, 3)) if video.dim() == 5 else video
        match = batch["labels"][..., :-1].amax(dim=-1)
        return vec, batch["audio"], match

    def loss(self, model: nn.Module, batch: dict[str, Tensor], epoch: int) -> tuple[Tensor, dict[str, float]]:
        vec, audio, match = self._pairs(_cast(model, batch))
        return contrastive_loss(model(vec, audio), match, self.margin), {}

    def predict(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
        batch = _cast(model, batch)
        vec, audio, match = self._pairs(batch)
        t = vec.shape[1]
        dist = model(vec[:, :, None, :].expand(-1, t, t, -1), audio[:, None, :, :].expand(-1, t, t, -1))
        target = batch["labels"].argmax(-1)
        matched = torch.diagonal(dist, dim1=1, dim2=2) < 0.5
        video_class = batch["labels"][..., :-1].amax(1).argmax(-1)[:, None].expand_as(target)
        pred = torch.where(matched, video_class, torch.full_like(target, self.num_classes))
        out = {"dist": dist.cpu().numpy(), "match": match.cpu().numpy(),
               "pred": pred.cpu().numpy(), "target": target.cpu().numpy()}
        if "index" in batch:
            out["index"] = batch["index"].cpu().numpy()
        return out

    def summarize(self, collected: dict[str, np.ndarray]) -> dict[str, float]:
        res = cross_modal_localization(collected["dist"], collected["match"])
        return {"a2v": res.a2v, "v2a": res.v2a, "videos": float(res.videos),
                "accuracy": segment_accuracy(collected["pred"], collected["target"]),
                "chance": chance_accuracy(collected["target"])}
