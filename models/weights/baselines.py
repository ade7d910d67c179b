"""Loaders for the authors' released baseline weights, listed in `models.weights.checkpoints.LOADERS`
(`load_official(path, arch)` / `avel eval --checkpoint FILE --official-arch ARCH`).

- ECCV18 (`AV_att.pt`, `AV_att_weak.pt`, `DMRN.pt`) are whole pickled modules of classes in
  the repo's `models`, `models_fusion`, `models_weakly` (in `checkpoints.PICKLE_MODULES`):
  read with trust_pickles=True, those
  classes become inert shells and only the tensors are kept. Archs `av_att`, `av_att_weak`, `dmrn`.
- CMBS (`supv_main_model` / `weak_main_model`) and the CPSP-repo AVEL/AVSDN/CMRAN are state
  dicts, possibly DataParallel-prefixed: archs `cmbs-fully`, `cmbs-weakly`, `avel-fully`,
  `avel-weakly`, `avsdn-fully`, `avsdn-weakly`, `cmran-fully`, `cmran-weakly`.
- The CMM Keras weights (`cmm_model_weights.h5`) load with `models.baselines.cmm.load_keras_weights`."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from models.registry import build

StateDict = Mapping[str, torch.Tensor]


def _rows(state: StateDict, key: str, default: int) -> int:
    return int(state[key].shape[0]) if key in state else default


def eccv18_model(state: StateDict, arch: str) -> nn.Module:
    return build(arch, tagset_size=_rows(state, "L2.weight", 29))


def cpsp_repo_baseline_model(state: StateDict, arch: str, flag: str) -> nn.Module:
    key = {"cmran": "localize_module.event_classifier.weight"}.get(arch, "category_classifier.0.weight")
    kwargs = {"flag": flag, "category_num": _rows(state, key, 28)}
    width = state.get("v_fc.weight", state.get("affine_video.weight"))
    if width is not None and width.shape[1] == 1024:
        kwargs["vis_fea_type"] = "resnet"
    return build(arch, **kwargs)


def cmbs_model(state: StateDict, flag: str) -> nn.Module:
    if flag == "fully":
        c = _rows(state, "localize_module.event_classifier.weight", 28)
    else:
        c = _rows(state, "audio_cas.weight", 29) - 1
    return build("cmbs", flag=flag, category_num=c)
