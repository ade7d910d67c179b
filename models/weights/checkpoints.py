"""Import the authors' released checkpoints into our modules: `load_official(path, arch)`.

Formats handled before dispatch (for every family):
- a bare state_dict, or one nested under "state_dict"/"model";
- a DataParallel state_dict (keys prefixed `module.`), as the CPSP scripts save;
- (only with `trust_pickles=True`) a whole pickled module, as the PSP repo saves with
  `torch.save(net_model)`. Unpickling runs code from the file, hence the explicit opt-in;
  the authors' classes (`fully_model.psp_net`, ...) are mapped to inert shells so that only
  their tensors are taken.

Dispatch: `LOADERS[arch](state_dict) -> nn.Module`, a static table (`models.registry`
shape): a new arch is one line there and a loader function in its family's weights module.
"""

from __future__ import annotations

import io
import pickle
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from models.registry import LazyTable, build

StateDict = Mapping[str, torch.Tensor]
# modules whose classes may appear in the authors' whole-module pickles: the PSP repo's, then
# ECCV18's (`AV_att.pt`, `AV_att_weak.pt`, `DMRN.pt`: its `models`, `models_fusion`, `models_weakly`)
PICKLE_MODULES = ("fully_model", "weakly_model", "__main__", "model.psp_family", "psp_family",
                  "models", "models_fusion", "models_weakly")

_BASELINES = "models.weights.baselines"
#: official checkpoint arch → loader(state_dict) -> nn.Module shaped like the checkpoint
LOADERS = LazyTable("arch", {
    **{arch: ("models.weights.checkpoints:psp_repo_model", {"arch": arch})
       for arch in ("psp-fully", "psp-weakly")},
    **{arch: ("models.weights.checkpoints:cpsp_repo_model", {"arch": arch})
       for arch in (f"{flag}-{setting}-{ds}" for flag in ("psp", "cpsp", "sspsp")
                    for setting in ("fully", "weakly") for ds in ("ave", "vggsound"))},
    **{arch: (f"{_BASELINES}:eccv18_model", {"arch": arch}) for arch in ("av_att", "av_att_weak", "dmrn")},
    **{f"{arch}-{flag}": (f"{_BASELINES}:cpsp_repo_baseline_model", {"arch": arch, "flag": flag})
       for arch in ("avel", "avsdn", "cmran") for flag in ("fully", "weakly")},
    **{f"cmbs-{flag}": (f"{_BASELINES}:cmbs_model", {"flag": flag}) for flag in ("fully", "weakly")},
    "han": "models.weights.han_checkpoint:han_model",
    "psp_avvp": "models.weights.han_checkpoint:psp_avvp_model",
    "cpsp_avvp": "models.weights.han_checkpoint:psp_avvp_model",
})


class _Shell(nn.Module):
    """Stands in for an author's class while unpickling; holds parameters, runs nothing."""


def _shell_unpickler() -> types.ModuleType:
    shells: dict[str, type] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module in PICKLE_MODULES:
                return shells.setdefault(f"{module}.{name}", type(name, (_Shell,), {}))
            return super().find_class(module, name)

    mod = types.ModuleType("avel_shell_pickle")
    mod.Unpickler = Unpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()  # type: ignore[attr-defined]
    mod.__dict__.update({k: getattr(pickle, k) for k in ("UnpicklingError", "HIGHEST_PROTOCOL")})
    return mod


def read_state_dict(path: str | Path, trust_pickles: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint in any handled format, `module.` prefix removed."""
    data = Path(path).read_bytes()
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickles:
            raise ValueError(
                f"{path}: holds pickled Python objects (the PSP repo saves whole modules); "
                "loading them can run code -- pass trust_pickles=True (--trust-pickles) if "
                f"you trust the file ({str(exc).splitlines()[0]})") from None
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False,
                         pickle_module=_shell_unpickler())
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state_dict or module checkpoint")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def load_official(path: str | Path, arch: str, trust_pickles: bool = False) -> nn.Module:
    """An `nn.Module` (eval mode, float32 unless the checkpoint is float64) with the weights of
    an official checkpoint; `arch` names the variant (see LOADERS)."""
    loader = LOADERS[arch]
    state = read_state_dict(path, trust_pickles)
    model = loader(state)
    dtype = next(iter(state.values())).dtype if state else torch.float32
    if dtype in (torch.float32, torch.float64):
        model = model.to(dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: does not match {arch}: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    return model.eval()


def _classes_from(state: StateDict, *keys: str) -> int | None:
    for key in keys:
        if key in state:
            return int(state[key].shape[0])
    return None


def psp_repo_model(state: StateDict, arch: str) -> nn.Module:
    return build(arch, category_num=_classes_from(state, "L2.weight") or 29)


def cpsp_repo_model(state: StateDict, arch: str) -> nn.Module:
    c = _classes_from(state, "category_classifier.0.weight", "psp.category_classifier.0.weight")
    return build(arch, category_num=c)
