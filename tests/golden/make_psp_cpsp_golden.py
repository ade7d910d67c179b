"""Write the PSP / CPSP golden files in tests/data/golden/ from the AUTHORS' OWN CODE.

Their code cannot live in this repository, so this script imports it from checkouts given
on the command line and saves only inputs, outputs and (for the small block goldens) the
weights:

    git --git-dir=<mirror of jasongief/PSP_CVPR_2021> archive HEAD | tar -x -C /tmp/psp
    git --git-dir=<mirror of jasongief/CPSP> archive HEAD | tar -x -C /tmp/cpsp
    python tests/golden/make_psp_cpsp_golden.py --psp-repo /tmp/psp --psp-commit <sha> \
        --cpsp-repo /tmp/cpsp --cpsp-commit <sha>

Imported modules: PSP_CVPR_2021 `fully_model.py` and `weakly_model.py`; CPSP
`cpsp_avel/model/psp_family.py`. The only runtime shim: their forwards call `.cuda()` on
fresh tensors, which here (on CPU) returns the tensor itself. Everything runs in eval mode
(dropout off), float32 for the PSP repo and float64 for CPSP (its LSTM states are `.double()`).

Goldens:
- `*_psp_block.npz`: the PSP module alone at small widths, explicit weights, random inputs
  at the run threshold, plus a hand-made "tie" input whose normalised betas hit the
  threshold exactly (strict `>` versus `>=`) -- the pruning step pinned at its edge.
- `*_net.npz`: the whole nets at their real widths; weights and inputs are rebuilt from
  `golden_arrays.named_*` (only their checksums are stored), outputs are stored.
- `authors_thresholds.json`: the threshold defaults of the authors' run scripts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.golden.golden_arrays import checksum, named_uniform, named_weights  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "golden"
BATCH = 2
BETA_SCALE = 2.0 ** 28


def _no_cuda(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return self


def _import(directory: Path, module: str):  # -> module
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(directory))


def _arrays_of(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {f"w/{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def _tie_inputs(dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, float]:
    """a = one-hot rows, v = small integers: with identity branch weights (v_L2 scaled by
    BETA_SCALE) beta_va[i, j] = BETA_SCALE * v[i, j] / sqrt(dim) (dim 4: exact), whose
    row-normalised values are exact binary fractions, several equal to the threshold 0.25."""
    v = torch.tensor([[2, 1, 1, 0], [1, 1, 1, 1], [4, 2, 1, 1], [0, 0, 3, 1]], dtype=dtype)
    a = torch.eye(dim, dtype=dtype)
    return a[None], v[None], 0.25


def _identity_weights(psp: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, param in psp.named_parameters():
            if name.endswith("layer_norm.weight"):
                param.fill_(1.0)
            elif name.endswith("layer_norm.bias"):
                param.zero_()
            else:
                param.copy_(torch.eye(param.shape[0], param.shape[1], dtype=param.dtype))
        # betas of order 2^27: their row sums (2^28..2^30) absorb the authors' `+ 1e-8` exactly
        # in float64 too, so the normalised ties stay exact binary fractions
        psp.v_L2.weight.mul_(BETA_SCALE)


def block_golden(psp_cls, name: str, commit: str, repo: str, dtype: torch.dtype, thr: float,
                 returns_tuple: bool) -> None:
    """Random weights and inputs at width 16 (sqrt exact), then the tie case at width 4."""
    torch.manual_seed(0)
    arrays: dict[str, np.ndarray] = {}
    for case, dim in (("random", 16), ("tie", 4)):
        psp = psp_cls(a_dim=dim, v_dim=dim, hidden_dim=dim, out_dim=dim).to(dtype).eval()
        if case == "random":
            a = torch.from_numpy(named_uniform(f"{name}/a", (3, 10, dim), -1, 1)).to(dtype)
            v = torch.from_numpy(named_uniform(f"{name}/v", (3, 10, dim), -1, 1)).to(dtype)
            case_thr = thr
        else:
            _identity_weights(psp)
            a, v, case_thr = _tie_inputs(dim, dtype)
        with torch.no_grad():
            out = psp(a, v, case_thr)
        outs = out if returns_tuple else (out,)
        arrays.update({f"{case}/{k}": x for k, x in _arrays_of(psp).items()})
        arrays[f"{case}/a"], arrays[f"{case}/v"] = a.numpy(), v.numpy()
        arrays[f"{case}/thr"] = np.array(case_thr)
        for i, o in enumerate(outs):
            arrays[f"{case}/out{i}"] = o.numpy()
    _save(name, arrays, commit, repo, psp_cls)


def net_golden(net: torch.nn.Module, name: str, commit: str, repo: str, dtype: torch.dtype,
               call, inputs: dict[str, tuple[int, ...]], input_ranges: dict[str, tuple[float, float]]
               ) -> None:
    net = net.to(dtype).eval()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    weights = named_weights(f"{name}/", shapes)
    net.load_state_dict({k: torch.from_numpy(v).to(dtype) for k, v in weights.items()})
    x = {k: torch.from_numpy(named_uniform(f"{name}/{k}", shape, *input_ranges[k])).to(dtype)
         for k, shape in inputs.items()}
    with torch.no_grad():
        outs = call(net, x)
    arrays: dict[str, np.ndarray] = {f"out{i}": o.numpy() for i, o in enumerate(outs)}
    arrays.update({f"weight_checksum/{k}": checksum(v) for k, v in weights.items()})
    arrays.update({f"input_checksum/{k}": checksum(v.numpy()) for k, v in x.items()})
    meta = {"weight_shapes": {k: list(s) for k, s in shapes.items()},
            "inputs": {k: list(s) for k, s in inputs.items()}, "input_ranges": input_ranges,
            "dtype": str(dtype).removeprefix("torch.")}
    _save(name, arrays, commit, repo, type(net), meta)


def _save(name: str, arrays: dict[str, np.ndarray], commit: str, repo: str, cls: type,
          meta: dict | None = None) -> None:
    info = {"repo": repo, "commit": commit, "class": f"{cls.__module__}.{cls.__qualname__}",
            "torch": torch.__version__, **(meta or {})}
    arrays["meta"] = np.array(json.dumps(info, sort_keys=True))
    path = OUT / f"{name}.npz"
    np.savez_compressed(path, **arrays)
    print(f"{path}: {path.stat().st_size} bytes")


def _script_default(text: str, pattern: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise SystemExit(f"no match for {pattern!r}")
    return float(found.group(1))


def thresholds(psp_repo: Path, psp_commit: str, cpsp_repo: Path, cpsp_commit: str) -> None:
    arg = r"'--threshold', type=float, default=([0-9.]+)"
    doc = {
        "psp_cvpr21": {"commit": psp_commit,
                       "fully": _script_default((psp_repo / "fully_supervised_main.py").read_text(), arg),
                       "weakly": _script_default((psp_repo / "weakly_supervised_main.py").read_text(), arg)},
        "cpsp": {"commit": cpsp_commit,
                 "fully": _script_default((cpsp_repo / "cpsp_avel/run_fully_supv.sh").read_text(),
                                          r"THRESHOLD=([0-9.]+)"),
                 "weakly": _script_default((cpsp_repo / "cpsp_avel/run_weakly_supv.sh").read_text(),
                                           r"THRESHOLD=([0-9.]+)"),
                 "avvp": _script_default((cpsp_repo / "cpsp_avvp/run.sh").read_text(),
                                         r"thre_val=([0-9.]+)")},
    }
    path = OUT / "authors_thresholds.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--psp-repo", type=Path, required=True, help="checkout of jasongief/PSP_CVPR_2021")
    parser.add_argument("--psp-commit", required=True)
    parser.add_argument("--cpsp-repo", type=Path, required=True, help="checkout of jasongief/CPSP")
    parser.add_argument("--cpsp-commit", required=True)
    args = parser.parse_args()
    torch.Tensor.cuda = _no_cuda  # their forwards move fresh tensors to the GPU
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    psp_repo, cpsp_repo = "jasongief/PSP_CVPR_2021", "jasongief/CPSP"
    fully = _import(args.psp_repo, "fully_model")
    weakly = _import(args.psp_repo, "weakly_model")
    family = _import(args.cpsp_repo / "cpsp_avel" / "model", "psp_family")

    block_golden(fully.PSP, "psp_cvpr21_fully_psp_block", args.psp_commit, psp_repo,
                 torch.float32, 0.099, True)
    block_golden(weakly.PSP, "psp_cvpr21_weakly_psp_block", args.psp_commit, psp_repo,
                 torch.float32, 0.095, False)
    block_golden(family.PSP, "cpsp_psp_block", args.cpsp_commit, cpsp_repo, torch.float64,
                 0.099, True)

    maps = {"audio": (BATCH, 10, 128), "video": (BATCH, 10, 7, 7, 512)}
    ranges = {"audio": (-1.0, 1.0), "video": (0.0, 1.0)}
    torch.manual_seed(0)
    net_golden(fully.psp_net(128, 512, 128, 29), "psp_cvpr21_fully_net", args.psp_commit, psp_repo,
               torch.float32, lambda m, x: m(x["audio"], x["video"], 0.099), maps, ranges)
    net_golden(weakly.psp_net(128, 512, 128, 29), "psp_cvpr21_weakly_net", args.psp_commit,
               psp_repo, torch.float32, lambda m, x: m(x["audio"], x["video"], 0.095), maps, ranges)
    net_golden(family.fully_psp_net(vis_fea_type="vgg", flag="psp", category_num=28, thr_val=0.099),
               "cpsp_fully_net", args.cpsp_commit, cpsp_repo, torch.float64,
               lambda m, x: m(x["video"], x["audio"]), maps, ranges)
    net_golden(family.weakly_psp_net(vis_fea_type="vgg", flag="psp", category_num=29, thr_val=0.095),
               "cpsp_weakly_net", args.cpsp_commit, cpsp_repo, torch.float64,
               lambda m, x: m(x["video"], x["audio"]), maps, ranges)
    thresholds(args.psp_repo, args.psp_commit, args.cpsp_repo, args.cpsp_commit)


if __name__ == "__main__":
    main()
