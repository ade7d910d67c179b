"""Parity check of our baseline modules against the original repositories' code.

Give paths to checkouts of the originals (nothing is copied from them); each original
network is built on CPU (their `.cuda()` calls are made no-ops for the run), its state dict
is loaded *strictly* into ours, and both run on the same float64 inputs. Prints parameter
counts and the largest absolute output difference per model.

    python bench/parity_baselines.py --eccv18 AVE-ECCV18 --cpsp CPSP --cmbs CMBS

Measured on the HEAD snapshots: every model loads strictly, identical parameter counts,
max |diff| <= 2e-15 (0 for most)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _by_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _package(root: Path, module: str):
    """Import `model.X` from a repo whose package is called `model` (CPSP, CMBS)."""
    for key in [k for k in sys.modules if k == "model" or k.startswith("model.")]:
        del sys.modules[key]
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(root))


def compare(name: str, theirs: nn.Module, ours: nn.Module, run_theirs, run_ours) -> float:
    theirs, ours = theirs.double().eval(), ours.double().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    with torch.no_grad():
        t, o = run_theirs(theirs), run_ours(ours)
    t = t if isinstance(t, tuple) else (t,)
    o = o if isinstance(o, tuple) else (o,)
    diff = max(float((x - y).abs().max()) for x, y in zip(t, o) if x is not None and y is not None)
    n_t = sum(p.numel() for p in theirs.parameters())
    n_o = sum(p.numel() for p in ours.parameters())
    print(f"{name:<28} params {n_t:>10,} vs {n_o:>10,}   max|diff| {diff:.2e}")
    return diff


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eccv18", type=Path, help="checkout of YapengTian/AVE-ECCV18")
    ap.add_argument("--cpsp", type=Path, help="checkout of jasongief/CPSP")
    ap.add_argument("--cmbs", type=Path, help="checkout of marmot-xy/CMBS")
    args = ap.parse_args(argv)
    if not (args.eccv18 or args.cpsp or args.cmbs):
        print("no original checkout given (--eccv18/--cpsp/--cmbs); nothing to compare")
        return
    from models import registry

    torch.Tensor.cuda = lambda self, *a, **k: self  # the originals call .cuda() unconditionally
    nn.Module.cuda = lambda self, *a, **k: self
    torch.set_default_dtype(torch.float64)  # ECCV18 builds its LSTM states with torch.zeros
    torch.manual_seed(0)
    a = torch.randn(3, 10, 128)
    v = torch.randn(3, 10, 7, 7, 512).abs()
    v_cf = v.permute(0, 1, 4, 2, 3).contiguous()
    if args.eccv18:
        e = _by_path("eccv18_models", args.eccv18 / "models.py")
        f = _by_path("eccv18_fusion", args.eccv18 / "models_fusion.py")
        w = _by_path("eccv18_weakly", args.eccv18 / "models_weakly.py")
        compare("av_att", e.att_Net(128, 128, 512, 29), registry.build("av_att"),
                lambda m: m(a, v), lambda m: m(a, v))
        compare("dmrn", f.TBMRF_Net(128, 128, 512, 29, 1), registry.build("dmrn"),
                lambda m: m(a, v), lambda m: m(a, v))
        compare("av_att_weak", w.att_Net(128, 128, 512, 29), registry.build("av_att_weak"),
                lambda m: m(a, v), lambda m: m(a, v))
    if args.cpsp:
        root = args.cpsp / "cpsp_avel"
        for flag in ("fully", "weakly"):
            m = _package(root, "model.avel")
            compare(f"avel {flag}", m.TBMRF_Net("vgg", flag), registry.build("avel", flag=flag),
                    lambda t: t(v_cf, a), lambda o: o(v, a))
            m = _package(root, "model.avsdn")
            compare(f"avsdn {flag}", m.avsdn_net("vgg", flag), registry.build("avsdn", flag=flag),
                    lambda t: t(v, a), lambda o: o(v, a))
        m = _package(root, "model.cmran")
        compare("cmran fully", m.supv_main_model("vgg"), registry.build("cmran", flag="fully"),
                lambda t: t(v, a), lambda o: o(v, a))
        weak = m.weak_main_model("vgg")
        weak.v_fc = nn.Linear(512, 512)  # the original forces 1024-d channels-first input
        compare("cmran weakly (512-d)", weak, registry.build("cmran", flag="weakly"),
                lambda t: t(v_cf, a), lambda o: o(v, a))
    if args.cmbs:
        m = _package(args.cmbs, "model.main_model")
        from models.baselines.cmbs import MAIN_CONFIG, WEAK_CONFIG
        compare("cmbs fully", m.supv_main_model(dict(MAIN_CONFIG)), registry.build("cmbs", flag="fully"),
                lambda t: t(v, a), lambda o: o(v, a))
        compare("cmbs weakly", m.weak_main_model(dict(WEAK_CONFIG)), registry.build("cmbs", flag="weakly"),
                lambda t: t(v, a), lambda o: o(v, a))


if __name__ == "__main__":
    main()
