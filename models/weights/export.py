"""Write our weights in the file layout each authors' repository loads: `export_official`.

The reverse of `load_official`. Each arch's repo reads its checkpoint one of three ways, and a
file in any other layout fails there (e.g. CPSP's `--resume` on a bare state_dict:
`Missing key(s) ... "module.fa.0.weight"`):

- "dataparallel": `nn.DataParallel(model).load_state_dict(torch.load(f))` -- a bare state_dict
  whose keys carry the `module.` prefix (CPSP `cpsp_avel/{fully,weakly}_supv_main.py` for
  PSP/CPSP/SSPSP and the AVEL/AVSDN/CMRAN baselines; CMBS `{supv,weakly}_main.py`).
- "plain": `model.load_state_dict(torch.load(f))` -- a bare state_dict, no prefix
  (AVVP-ECCV20 `main_avvp.py` for HAN; CPSP `cpsp_avvp/main_avvp_psp.py`).
- "module": `net_model = torch.load(f)` -- a whole pickled module of the repo's own class
  (PSP_CVPR_2021 `{fully,weakly}_supervised_main.py`: `fully_model.psp_net` /
  `weakly_model.psp_net`; AVE-ECCV18 `supervised_main.py`/`weak_supervised_main.py`:
  `models.att_Net`, `models_fusion.TBMRF_Net`, `models_weakly.att_Net`). Only the authors'
  class can be pickled so that their unpickler finds it, so this layout needs their
  checkout (`authors_code`): the class is imported from there, built with the arguments
  their script passes, given our weights (strictly) and saved whole.

CMM's Keras weights are not handled here (`models.baselines.cmm` reads them; no exporter).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn as nn

from models.weights import checkpoints
from models.weights.layouts import LAYOUTS, OfficialLayout, StateDict


def checked_state(state: StateDict, arch: str) -> dict[str, torch.Tensor]:
    """`state` after loading it strictly into our module for `arch`: a wrong arch or a
    truncated checkpoint fails here, not later in the authors' script."""
    loader = checkpoints.LOADERS[arch]  # KeyError listing the known archs
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    model = loader(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"weights do not fit {arch}: {str(exc).splitlines()[0]} "
                         f"{' '.join(str(exc).split()[1:40])}") from None
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _authors_module(authors_code: Path, name: str) -> object:
    """Import `name` from the authors' checkout under its own name, so that pickle records
    the class as their scripts know it (`fully_model.psp_net`, ...)."""
    path = Path(authors_code) / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; --authors-code must be the repo's checkout")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save_whole_module(state: StateDict, layout: OfficialLayout, authors_code: Path,
                       out: Path) -> None:
    saved = sys.modules.get(layout.module)
    module = _authors_module(authors_code, layout.module)
    sys.modules[layout.module] = module  # type: ignore[assignment]
    try:
        assert layout.args is not None
        net: nn.Module = getattr(module, layout.cls)(*layout.args(state))
        missing, unexpected = net.load_state_dict(dict(state), strict=False)
        if missing or unexpected:
            raise ValueError(f"weights do not fit {layout.module}.{layout.cls}: missing "
                             f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        torch.save(net.eval(), out)
    finally:
        if saved is None:
            sys.modules.pop(layout.module, None)
        else:
            sys.modules[layout.module] = saved


def export_official(state: StateDict, arch: str, out: str | Path,
                    authors_code: str | Path | None = None) -> OfficialLayout:
    """Write `state` (our parameter names) to `out` in the layout `arch`'s repo loads; the
    file appears only when complete (temp + rename). Returns the layout used."""
    if arch not in LAYOUTS:
        raise KeyError(f"no official layout for {arch!r}; known: {', '.join(sorted(LAYOUTS))}")
    layout = LAYOUTS[arch]
    state = checked_state(state, arch)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if layout.layout == "dataparallel":
            torch.save({f"module.{k}": v for k, v in state.items()}, tmp)
        elif layout.layout == "plain":
            torch.save(state, tmp)
        else:
            if authors_code is None:
                raise ValueError(
                    f"{arch}: {layout.loader} loads a whole pickled {layout.module}.{layout.cls}; "
                    "pass the repo's checkout (--authors-code DIR) so that class can be saved")
            _save_whole_module(state, layout, Path(authors_code), tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return layout
