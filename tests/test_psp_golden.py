"""Our PSP / CPSP nets and their PSP block against outputs of the AUTHORS' OWN CODE.

The goldens in tests/data/golden/ were written by tests/golden/make_psp_cpsp_golden.py,
which imports jasongief/PSP_CVPR_2021 and jasongief/CPSP (commits in each file's `meta`)
and runs them on CPU in eval mode. Block goldens carry their weights; net goldens rebuild
weights and inputs from `golden_arrays` by name and check them against stored checksums.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.psp_blocks import PSP
from models.weights.checkpoints import load_official
from tests.golden.golden_arrays import checksum, named_uniform, named_weights

GOLDEN = Path(__file__).parent / "data" / "golden"
PSP_REPO_COMMIT = "ddd20f3b0a17aec55333bff472eef3ca3ef19958"
CPSP_REPO_COMMIT = "bb4a08ea64008a4d09135834b64db1777a9e4388"


def _load(name: str) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(GOLDEN / f"{name}.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads(str(arrays.pop("meta")))


# ------------------------------------------------------------------------ PSP block

BLOCKS = {  # golden -> (our PSP options, authors' commit, dtype, tolerance)
    "psp_cvpr21_fully_psp_block": ({}, PSP_REPO_COMMIT, torch.float32, 1e-5),
    "psp_cvpr21_weakly_psp_block": ({"renormalize": False, "with_fc": False}, PSP_REPO_COMMIT,
                                    torch.float32, 1e-5),
    "cpsp_psp_block": ({}, CPSP_REPO_COMMIT, torch.float64, 1e-10),
}


def _block_outputs(name: str, case: str) -> tuple[list[torch.Tensor], list[np.ndarray], float]:
    arrays, meta = _load(name)
    options, commit, dtype, _ = BLOCKS[name]
    assert meta["commit"] == commit
    weights = {k[len(f"{case}/w/"):]: torch.from_numpy(v) for k, v in arrays.items()
               if k.startswith(f"{case}/w/")}
    dim = weights["v_L1.weight"].shape[0]
    ours = PSP(a_dim=dim, v_dim=dim, hidden_dim=dim, out_dim=dim, **options).to(dtype).eval()
    ours.load_state_dict(weights, strict=True)
    with torch.no_grad():
        got = ours(torch.from_numpy(arrays[f"{case}/a"]), torch.from_numpy(arrays[f"{case}/v"]),
                   float(arrays[f"{case}/thr"]))
    expected = [arrays[k] for k in sorted(k for k in arrays if k.startswith(f"{case}/out"))]
    if not options:  # fully block: (fusion, v_psp, a_psp)
        return list(got), expected, BLOCKS[name][3]
    return [got[0]], expected, BLOCKS[name][3]  # the weak block returns the fusion only


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_psp_block_matches_the_authors_module_on_random_inputs(name):
    got, expected, tol = _block_outputs(name, "random")
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=0, atol=tol)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_psp_block_prunes_betas_equal_to_the_threshold_like_the_authors_module(name):
    """Betas whose row-normalised value equals the threshold exactly (0.25): the authors'
    strict `>` drops them; `>=`, or pruning the unnormalised betas, gives other outputs."""
    got, expected, tol = _block_outputs(name, "tie")
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=0, atol=tol)


def test_psp_prune_keeps_only_row_normalised_betas_strictly_above_the_threshold():
    """The pruning step itself, on the tie input's betas: row-normalise, keep > thr, and (fully
    only) renormalise. Written from the spec (psp_cpsp.md §1) with exact binary fractions."""
    beta = torch.tensor([[2.0, 1, 1, 0], [1, 1, 1, 1], [4, 2, 1, 1]]) / 2  # v / sqrt(4)
    full = PSP(4, 4, 4, 4)._prune(beta, 0.25)
    weak = PSP(4, 4, 4, 4, renormalize=False, with_fc=False)._prune(beta, 0.25)
    assert full.tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    assert weak.tolist() == [[0.5, 0, 0, 0], [0, 0, 0, 0], [0.5, 0, 0, 0]]


# ------------------------------------------------------------------------ whole nets

NETS = {  # golden -> (our arch for load_official, call, authors' commit, tolerance)
    "psp_cvpr21_fully_net": ("psp-fully", lambda m, x: m(x["audio"], x["video"], 0.099),
                             PSP_REPO_COMMIT, 1e-5),
    "psp_cvpr21_weakly_net": ("psp-weakly", lambda m, x: m(x["audio"], x["video"], 0.095),
                              PSP_REPO_COMMIT, 1e-5),
    "cpsp_fully_net": ("psp-fully-ave", lambda m, x: m(x["video"], x["audio"]),
                       CPSP_REPO_COMMIT, 1e-10),
    "cpsp_weakly_net": ("psp-weakly-ave", lambda m, x: m(x["video"], x["audio"]),
                        CPSP_REPO_COMMIT, 1e-10),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_official_import_of_the_authors_state_dict_reproduces_their_outputs(name, tmp_path):
    """The authors' net's state_dict (names and shapes as their module has them), saved the way
    their scripts save weights, goes through `load_official` into our net; on the same inputs
    our outputs equal theirs."""
    arch, call, commit, tol = NETS[name]
    arrays, meta = _load(name)
    assert meta["commit"] == commit
    dtype = getattr(torch, meta["dtype"])
    shapes = {k: tuple(s) for k, s in meta["weight_shapes"].items()}
    weights = named_weights(f"{name}/", shapes)
    for k, w in weights.items():
        np.testing.assert_allclose(checksum(w), arrays[f"weight_checksum/{k}"], rtol=1e-12)
    inputs = {k: named_uniform(f"{name}/{k}", tuple(s), *meta["input_ranges"][k])
              for k, s in meta["inputs"].items()}
    for k, x in inputs.items():
        np.testing.assert_allclose(checksum(x.astype(meta["dtype"])), arrays[f"input_checksum/{k}"],
                                   rtol=1e-12)
    torch.save({k: torch.from_numpy(w).to(dtype) for k, w in weights.items()}, tmp_path / "net.pt")
    model = load_official(tmp_path / "net.pt", arch)
    with torch.no_grad():
        got = call(model, {k: torch.from_numpy(x).to(dtype) for k, x in inputs.items()})
    expected = [arrays[k] for k in sorted(k for k in arrays if k.startswith("out"))]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == dtype
        np.testing.assert_allclose(g.numpy(), e, rtol=0, atol=tol)
