"""Which file layout each authors' repository loads its checkpoint in, by arch: `LAYOUTS`.

Data only, without torch, so that `avel export-checkpoint --help` can list the archs without
loading it; `models.weights.export` (whose docstring explains the three layouts) writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

StateDict = Mapping[str, "torch.Tensor"]


@dataclass(frozen=True)
class OfficialLayout:
    """How one arch's repo reads its checkpoint (see the module docstring)."""

    layout: str  # "dataparallel" | "plain" | "module"
    loader: str  # the repo file that loads it (for messages and README)
    module: str = ""  # "module" layout: the repo's module file (without .py) ...
    cls: str = ""  # ... and class name
    args: Callable[[StateDict], tuple] | None = None  # constructor args, as their script passes


def _rows(key: str, default: int) -> Callable[[StateDict], int]:
    return lambda state: int(state[key].shape[0]) if key in state else default


_psp_classes = _rows("L2.weight", 29)

LAYOUTS: dict[str, OfficialLayout] = {}
for _flag in ("psp", "cpsp", "sspsp"):
    for _setting in ("fully", "weakly"):
        for _ds in ("ave", "vggsound"):
            LAYOUTS[f"{_flag}-{_setting}-{_ds}"] = OfficialLayout(
                "dataparallel", f"jasongief/CPSP cpsp_avel/{_setting}_supv_main.py")
for _arch in ("avel", "avsdn", "cmran"):
    for _setting in ("fully", "weakly"):
        LAYOUTS[f"{_arch}-{_setting}"] = OfficialLayout(
            "dataparallel", f"jasongief/CPSP cpsp_avel/{_setting}_supv_main.py")
LAYOUTS["cmbs-fully"] = OfficialLayout("dataparallel", "marmot-xy/CMBS supv_main.py")
LAYOUTS["cmbs-weakly"] = OfficialLayout("dataparallel", "marmot-xy/CMBS weakly_main.py")
LAYOUTS["han"] = OfficialLayout("plain", "YapengTian/AVVP-ECCV20 main_avvp.py")
LAYOUTS["psp_avvp"] = OfficialLayout("plain", "jasongief/CPSP cpsp_avvp/main_avvp_psp.py")
LAYOUTS["cpsp_avvp"] = OfficialLayout("plain", "jasongief/CPSP cpsp_avvp/main_avvp_psp.py")
# psp_net(128, 512, 128, 29) in both PSP scripts; att_Net(128, 128, 512, 29) and
# TBMRF_Net(128, 128, 512, 29, 1) in AVE-ECCV18's
LAYOUTS["psp-fully"] = OfficialLayout(
    "module", "jasongief/PSP_CVPR_2021 fully_supervised_main.py", "fully_model", "psp_net",
    lambda s: (128, 512, 128, _psp_classes(s)))
LAYOUTS["psp-weakly"] = OfficialLayout(
    "module", "jasongief/PSP_CVPR_2021 weakly_supervised_main.py", "weakly_model", "psp_net",
    lambda s: (128, 512, 128, _psp_classes(s)))
LAYOUTS["av_att"] = OfficialLayout(
    "module", "YapengTian/AVE-ECCV18 supervised_main.py", "models", "att_Net",
    lambda s: (128, 128, 512, _psp_classes(s)))
LAYOUTS["dmrn"] = OfficialLayout(
    "module", "YapengTian/AVE-ECCV18 supervised_main.py", "models_fusion", "TBMRF_Net",
    lambda s: (128, 128, 512, _psp_classes(s), 1))
LAYOUTS["av_att_weak"] = OfficialLayout(
    "module", "YapengTian/AVE-ECCV18 weak_supervised_main.py", "models_weakly", "att_Net",
    lambda s: (128, 128, 512, _psp_classes(s)))
