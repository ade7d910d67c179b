"""Import the authors' released checkpoints into our modules: `load_official(path, arch)`.

Formats handled before dispatch (for every family):
- a bare state_dict, or one nested under "state_dict"/"model";
- a DataParallel state_dict (keys prefixed `module.`), as the CPSP scripts save;
- (only with `trust_pickles=True`) a whole pickled module, as the PSP repo saves with
  `torch.save(net_model)`. Such a file names classes, so the opt-in stays, but it still runs
  no code: the authors' classes (`fully_model.psp_net`, ...) become inert shells and
  `torch.nn` layers (and this package's nets) load as themselves, through torch's
  weights-only unpickler (zip format) or, for the old unzipped format that unpickler cannot
  read, one that resolves only those, the tensor rebuilders and plain containers; any other
  name is refused by name.

Dispatch: `LOADERS[arch](state_dict) -> nn.Module`, a static table (`models.registry`
shape): a new arch is one line there and a loader function in its family's weights module.
"""

from __future__ import annotations

import importlib
import io
import pickle
import types
import zipfile
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


#: what an old (pre-1.6, not zipped) whole-module pickle may name besides the authors' classes
#: and torch.nn layers: tensor and parameter rebuilders and plain containers (storages are
#: resolved by torch itself before the unpickler is asked)
_LEGACY_PLAIN = {"collections.OrderedDict", "torch.nn.parameter.Parameter", "builtins.set",
                 "builtins.dict", "builtins.list", "builtins.tuple", "torch.Size"}
#: PyTorch 0.3/0.4 modules pickle their `_backend` as a call of this function, gone since;
#: the attribute is dropped by `state_dict` anyway
_THNN_BACKEND = "torch.nn.backends.thnn._get_thnn_function_backend"


#: modules whose nn.Module classes a whole-module pickle may name as themselves: torch's layers
#: and this package's nets (a pickle of a net built on ours, e.g. a subclass of models.psp's)
LAYER_MODULES = ("torch.nn.modules.", "models.")


class _ModulePickleRules:
    """Which globals a whole-module pickle may name: the authors' classes (as inert shells,
    one per name) and the nn.Module classes of `LAYER_MODULES` (as themselves). Nothing that
    runs code on load."""

    def __init__(self) -> None:
        self.shells: dict[str, type] = {}

    def admitted(self, qualname: str) -> Any:
        module, _, name = qualname.rpartition(".")
        if module in PICKLE_MODULES:
            return self.shells.setdefault(qualname, type(name, (_Shell,), {}))
        if module.startswith(LAYER_MODULES):  # imported: torch's or this package's own code
            try:
                layer = getattr(importlib.import_module(module), name, None)
            except ImportError:  # a module this version does not have: refused by name below
                return None
            if isinstance(layer, type) and issubclass(layer, nn.Module):
                return layer
        return None

    def load_zipped(self, data: bytes) -> Any:
        """torch's weights-only unpickler, with the admitted names added to its allowlist;
        it refuses every other name itself."""
        names = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
        allowed = [(obj, q) for q in names if (obj := self.admitted(q)) is not None]
        with torch.serialization.safe_globals(allowed):
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def load_legacy(self, data: bytes) -> Any:
        """torch's weights-only unpickler cannot read whole modules in the old format (it
        refuses their source-file records), so an unpickler that resolves the admitted
        names, `_LEGACY_PLAIN` and the tensor rebuilders only."""
        rules = self

        class Unpickler(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                qualname = f"{'builtins' if module == '__builtin__' else module}.{name}"
                admitted = rules.admitted(qualname)
                if admitted is not None:
                    return admitted
                if qualname == _THNN_BACKEND:
                    return _no_backend
                if qualname in _LEGACY_PLAIN or (module == "torch._utils" and name.startswith("_rebuild_")):
                    return super().find_class(module, name)
                raise pickle.UnpicklingError(f"Unsupported global: {qualname}")

        restricted = types.ModuleType("avel_restricted_pickle")
        restricted.Unpickler = Unpickler  # type: ignore[attr-defined]
        restricted.load = lambda f, **kw: Unpickler(f, **kw).load()  # type: ignore[attr-defined]
        restricted.__dict__.update({k: getattr(pickle, k) for k in ("UnpicklingError", "HIGHEST_PROTOCOL")})
        # not torch's weights-only unpickler, but one that can call nothing beyond the above
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False,
                          pickle_module=restricted)


def _no_backend() -> None:
    return None


def _unsupported(exc: BaseException) -> str:
    """The line of an unpickler's refusal that names the global."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    line = next((line for line in lines if "Unsupported global" in line), lines[0] if lines else "")
    # torch goes on with advice to allow the name, which is not ours to give
    return line[line.find("Unsupported global"):].split(" was not an allowed")[0]


def read_state_dict(path: str | Path, trust_pickles: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint in any handled format, `module.` prefix removed."""
    data = Path(path).read_bytes()
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickles:
            raise ValueError(
                f"{path}: holds a pickled module, not a plain state_dict (the PSP repo saves "
                "whole modules) -- pass trust_pickles=True (--trust-pickles) to take its "
                "tensors: its classes become inert shells, nothing in it runs "
                f"({str(exc).splitlines()[0]})") from None
        rules = _ModulePickleRules()
        try:
            obj = (rules.load_zipped(data) if zipfile.is_zipfile(io.BytesIO(data))
                   else rules.load_legacy(data))
        except pickle.UnpicklingError as refused:
            raise ValueError(f"{path}: the pickle names something other than torch.nn layers "
                             "and model classes; not loaded "
                             f"({_unsupported(refused)})") from None
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
