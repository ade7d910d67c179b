"""Import of the released HAN checkpoint (`models/MMIL_Net.pt` of AVVP-ECCV20).

The official script saves `model.state_dict()` of `MMIL_Net` (torch 1.2), so the file is a
plain mapping of parameter name → tensor, names identical to `models.han.HAN`. Checkpoints
saved from `nn.DataParallel` carry a `module.` prefix; it is stripped. A dict wrapping the
weights under "state_dict"/"model" is accepted too; whole pickled modules are refused
(reading goes through `models.weights.checkpoints.read_state_dict`, weights only). Any name or
shape mismatch is reported in one error listing the keys, never silently skipped.

`load_han_checkpoint(path)` loads with HAN-specific checks; `han_model` and `psp_avvp_model`
are the loaders of archs "han", "psp_avvp" and "cpsp_avvp" in `models.weights.checkpoints.LOADERS`
(PSP/CPSP-AVVP checkpoints are plain state_dicts saved by the CPSP repo's retrain mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from models.cpsp_avvp import PSPMMIL
from models.han import HAN
from models.weights.checkpoints import read_state_dict

UNUSED_PREFIXES = ("audio_encoder.", "visual_encoder.", "cmt_encoder.")


def convert_state_dict(state: Mapping[str, torch.Tensor], model: HAN) -> dict[str, torch.Tensor]:
    """Check names and shapes against `model`; drop unused-module keys if the model lacks them."""
    own = model.state_dict()
    state = dict(state)
    if not model.with_unused:
        state = {k: v for k, v in state.items() if not k.startswith(UNUSED_PREFIXES)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        if wrong:
            parts.append("shape mismatch " + ", ".join(
                f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:8]))
        raise ValueError("checkpoint does not fit HAN: " + "; ".join(parts))
    return state


def load_han_checkpoint(path: str | Path, model: HAN | None = None,
                        map_location: str | torch.device = "cpu") -> HAN:
    """Load the official HAN weights into `model` (a new `HAN()` by default), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HAN checkpoint not found: {path}")
    state = read_state_dict(path)  # tensors only (weights_only), `module.` prefix removed
    if model is None:  # the LLP head (25 classes); a wrong head shows up as a shape mismatch
        model = HAN(with_unused=any(k.startswith(UNUSED_PREFIXES) for k in state))
    try:
        model.load_state_dict(convert_state_dict(state, model), strict=True)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return model.to(map_location).eval()


def han_model(state: Mapping[str, torch.Tensor]) -> HAN:
    """Model shaped like the checkpoint: class count from fc_prob, unused modules if present."""
    n_classes = int(state["fc_prob.weight"].shape[0]) if "fc_prob.weight" in state else 25
    return HAN(n_classes=n_classes, with_unused=any(k.startswith(UNUSED_PREFIXES) for k in state))


def psp_avvp_model(state: Mapping[str, torch.Tensor]) -> nn.Module:
    n_classes = int(state["fc_prob.weight"].shape[0]) if "fc_prob.weight" in state else 25
    return PSPMMIL(n_classes=n_classes)
