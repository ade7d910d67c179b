"""Trainer families for PSP and CPSP (see the contract in models/training/trainer.py): how each
original script turns a batch into a loss, and its predictions into AVE accuracy.

- `cpsp-fully`  (fully_supv_main.py): BCEWithLogits(event) + CE(category) [+ λ·AVPS]
  [+ λ·PSA_s] [+ λ·PSA_v] [+ λ·NCE for sspsp]; eval = compute_accuracy_supervised.
- `cpsp-weakly` (weakly_supv_main.py): MultiLabelSoftMargin on the softmax video prediction
  vs the video-level multi-hot label [+ λ·PSA_v with labels.argmax as class] [+ NCE];
  eval = compute_accuracy_supervised on the raw category logits + event gate.
  (Upstream's script cannot even import -- `loss_vpsa_infoNCE_version` is undefined -- this
  is the run it would do with that import removed.)
- `psp-fully` / `psp-weakly` (PSP repo): CE over C+1 + 100·AVPS / BCE on the softmax of
  the averaged gated scores; eval = per-segment argmax over C+1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from models.metrics.ave import (
    chance_accuracy,
    cpsp_segment_predictions,
    psp_segment_predictions,
    segment_accuracy,
)
from models.registry import build
from models.training import psp_losses as L
from models.training.preset import Preset


def video_level_labels(labels: Tensor) -> Tensor:
    """[B,T,C+1] segment one-hot → [B,C] foreground multi-hot (mil_labels[:, :-1])."""
    return labels[..., :-1].amax(dim=1)


def _inputs(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    dtype = next(model.parameters()).dtype
    return batch["video"].to(dtype), batch["audio"].to(dtype)


class _AVEFamily:
    selection_metric = "accuracy"

    def __init__(self, preset: Preset, num_classes: int, class_names: list[str]) -> None:
        self.preset = preset
        self.num_classes = num_classes
        self.class_names = class_names
        self.opt: dict[str, Any] = dict(preset.options)

    def summarize(self, collected: dict[str, np.ndarray]) -> dict[str, float]:
        return {"accuracy": segment_accuracy(collected["pred"], collected["target"]),
                "chance": chance_accuracy(collected["target"])}


class CPSPFullyFamily(_AVEFamily):
    def build_model(self) -> nn.Module:
        return build(self.preset.arch, category_num=self.num_classes, thr_val=self.preset.threshold)

    def loss(self, model: nn.Module, batch: dict[str, Tensor], epoch: int
             ) -> tuple[Tensor, dict[str, float]]:
        video, audio = _inputs(model, batch)
        labels = batch["labels"].to(video.dtype)
        out = model(video, audio)
        o = self.opt
        if o["flag"] == "sspsp":
            event_logits, category_logits, v, a = out
            avps = fusion = None
        else:
            event_logits, category_logits, avps, fusion = out[:4]
        labels_bce, seg_class = labels[..., :-1].max(-1)
        labels_event = seg_class.max(-1)[0]
        parts = {}
        loss_event = F.binary_cross_entropy_with_logits(event_logits, labels_bce)
        loss_class = F.cross_entropy(category_logits, labels_event)
        loss = loss_event + loss_class
        parts.update(event=float(loss_event.detach()), category=float(loss_class.detach()))
        if o.get("avps") and avps is not None:
            la = L.avps_loss(avps, L.cpsp_avps_target(labels_bce))
            loss = loss + o["lambda_avps"] * la
            parts["avps"] = float(la.detach())
        if o.get("scon") and fusion is not None:
            e, pos, neg = L.segment_flags(labels_bce)
            ls = L.segment_contrastive_loss(fusion, e, pos, neg, t=o["scon_t"],
                                            corrected=o.get("scon_corrected", False))
            if torch.isfinite(ls):  # a batch without any event video gives NaN upstream
                loss = loss + o["lambda_scon"] * ls
            parts["scon"] = float(ls.detach())
        if o.get("vcon") and fusion is not None:
            lv = L.video_contrastive_loss(fusion, labels_event, margin=o["margin"], neg_num=o["neg_num"])
            loss = loss + o["lambda_vcon"] * lv
            parts["vcon"] = float(lv.detach())
        if o.get("sscon") and o["flag"] == "sspsp":
            ln = L.label_free_nce_loss(a, v, t=o["sscon_t"])
            loss = loss + o["lambda_sscon"] * ln
            parts["sscon"] = float(ln.detach())
        return loss, parts

    def predict(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
        video, audio = _inputs(model, batch)
        out = model(video, audio)
        b = video.size(0)
        pred = cpsp_segment_predictions(out[0].reshape(b, -1), out[1].reshape(b, -1), self.num_classes)
        return {"pred": pred.cpu().numpy(), "target": batch["labels"].argmax(-1).cpu().numpy(),
                "index": batch["index"].cpu().numpy()}


class CPSPWeaklyFamily(_AVEFamily):
    def build_model(self) -> nn.Module:
        return build(self.preset.arch, category_num=self.num_classes, thr_val=self.preset.threshold)

    def _unpack(self, out: tuple[Tensor, ...], b: int) -> dict[str, Tensor | None]:
        if self.opt["flag"] == "sspsp":
            if self.opt["dataset"] == "vggsound":  # resnet wrapper: (a, v, event, category, pred)
                a, v, ev, cat, pred = out
            else:  # vgg net: (event, category, v, a) -- no video prediction upstream
                ev, cat, v, a = out
                pred = None
            return {"fusion": None, "event": ev.reshape(b, -1), "category": cat.reshape(b, -1),
                    "pred": pred, "a": a, "v": v}
        fusion, ev, cat, pred = out[:4]
        return {"fusion": fusion, "event": ev.reshape(b, -1), "category": cat.reshape(b, -1),
                "pred": pred, "a": None, "v": None}

    def loss(self, model: nn.Module, batch: dict[str, Tensor], epoch: int
             ) -> tuple[Tensor, dict[str, float]]:
        video, audio = _inputs(model, batch)
        labels = video_level_labels(batch["labels"].to(video.dtype))  # [B,C]
        o = self.opt
        r = self._unpack(model(video, audio), video.size(0))
        pred = r["pred"]
        if pred is None:  # sspsp on VGG: rebuild the MIL prediction from the raw heads
            fused = torch.sigmoid(r["event"])[..., None] * r["category"][:, None, :]
            pred = F.softmax(fused.max(dim=1)[0], dim=-1)
        loss = L.cpsp_weakly_class_loss(pred, labels, broadcast_quirk=o.get("label_broadcast_quirk", False))
        parts = {"video_class": float(loss.detach())}
        if o.get("vcon") and r["fusion"] is not None:
            lv = L.video_contrastive_loss(r["fusion"], labels.argmax(-1), margin=o["margin"],
                                          neg_num=o["neg_num"])
            loss = loss + o["lambda_vcon"] * lv
            parts["vcon"] = float(lv.detach())
        if o.get("sscon") and r["a"] is not None:
            ln = L.label_free_nce_loss(r["a"], r["v"], t=o["sscon_t"])
            loss = loss + o["lambda_sscon"] * ln
            parts["sscon"] = float(ln.detach())
        return loss, parts

    def predict(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
        video, audio = _inputs(model, batch)
        r = self._unpack(model(video, audio), video.size(0))
        pred = cpsp_segment_predictions(r["event"], r["category"], self.num_classes)
        return {"pred": pred.cpu().numpy(), "target": batch["labels"].argmax(-1).cpu().numpy(),
                "index": batch["index"].cpu().numpy()}


class PSPFullyFamily(_AVEFamily):
    def build_model(self) -> nn.Module:
        return build(self.preset.arch, category_num=self.num_classes + 1, thr_val=self.preset.threshold)

    def loss(self, model: nn.Module, batch: dict[str, Tensor], epoch: int
             ) -> tuple[Tensor, dict[str, float]]:
        video, audio = _inputs(model, batch)
        labels = batch["labels"].to(video.dtype)
        _, out, cross_att = model(audio, video, self.preset.threshold)
        total, ce, avps = L.psp_fully_loss(out, labels.argmax(-1), cross_att,
                                           L.psp_avps_target(labels), self.opt["lambda_avps"])
        return total, {"ce": float(ce.detach()), "avps": float(avps.detach())}

    def predict(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
        video, audio = _inputs(model, batch)
        _, out, _ = model(audio, video, self.preset.threshold)
        return {"pred": psp_segment_predictions(out).cpu().numpy(),
                "target": batch["labels"].argmax(-1).cpu().numpy(),
                "index": batch["index"].cpu().numpy()}


class PSPWeaklyFamily(_AVEFamily):
    def build_model(self) -> nn.Module:
        return build(self.preset.arch, category_num=self.num_classes + 1, thr_val=self.preset.threshold)

    def loss(self, model: nn.Module, batch: dict[str, Tensor], epoch: int
             ) -> tuple[Tensor, dict[str, float]]:
        video, audio = _inputs(model, batch)
        prob = L.psp_prob_labels(batch["labels"].to(video.dtype))  # prob_label.h5, [B,C+1]
        out_avg, _ = model(audio, video, self.preset.threshold)
        loss = L.psp_weakly_loss(out_avg, prob)
        return loss, {"bce": float(loss.detach())}

    def predict(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
        video, audio = _inputs(model, batch)
        _, score = model(audio, video, self.preset.threshold)
        return {"pred": psp_segment_predictions(F.softmax(score, -1)).cpu().numpy(),
                "target": batch["labels"].argmax(-1).cpu().numpy(),
                "index": batch["index"].cpu().numpy()}
