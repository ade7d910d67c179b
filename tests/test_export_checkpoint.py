"""export-checkpoint → load_official gives the same network: identical tensors and identical
outputs, for every arch `load_official` reads; each file has the layout its repo's loader
expects (module. prefix for DataParallel loaders, bare state_dict, or a whole module)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

import models.zoo  # noqa: F401
from models.weights.checkpoints import LOADERS, load_official
from models.weights.export import LAYOUTS, export_official
from pipeline.commands.export_checkpoint import export_checkpoint
from pipeline.core.errors import InputError
from tests.conftest import avel_cmd, cli_env

MIRRORS = Path("/work/.mirror")


def _inputs(model: torch.nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """Small random inputs by forward-argument name (AVE: 10 segments)."""
    g = torch.Generator().manual_seed(1)
    shapes = {"audio": (1, 10, 128), "video": (1, 10, 7, 7, 512), "imgs": (1, 10, 1024, 7, 7),
              "visual_2d": (1, 80, 2048), "visual_3d": (1, 10, 512)}
    names = [n for n in model.forward.__code__.co_varnames[1:model.forward.__code__.co_argcount]
             if n in shapes]
    return {n: torch.rand(*shapes[n], generator=g) for n in names}


def _flat(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return []


def _authors_checkout(arch: str, tmp: Path) -> Path | None:
    """The repo file the 'module' layout imports, from the fetched mirror (not in this repo)."""
    layout = LAYOUTS[arch]
    repo = layout.loader.split()[0].replace("/", "+")
    git_dir = MIRRORS / repo / "repo"
    if not git_dir.is_dir():
        return None
    tmp.mkdir(parents=True, exist_ok=True)
    text = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{layout.module}.py"],
                          capture_output=True, check=True).stdout
    (tmp / f"{layout.module}.py").write_bytes(text)
    return tmp


def test_every_loaded_arch_has_a_layout() -> None:
    assert set(LOADERS) == set(LAYOUTS)


# the two 14M-parameter baselines take ~10 s each on a shared 2-core machine
ARCHS = [pytest.param(a, marks=pytest.mark.slow) if a.startswith(("cmran", "cmbs")) else a
         for a in sorted(LAYOUTS)]


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_identical_outputs(arch: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ours = LOADERS[arch]({}).eval()
    for p in ours.parameters():  # not the init values: any swap of tensors would show
        p.data.normal_(0, 0.05)
    layout = LAYOUTS[arch]
    authors = None
    if layout.layout == "module":
        authors = _authors_checkout(arch, tmp_path / "authors")
        if authors is None:
            pytest.skip(f"needs the authors' {layout.module}.py (fetch {layout.loader.split()[0]})")
    out = tmp_path / "official.pt"
    export_official(ours.state_dict(), arch, out, authors_code=authors)

    if layout.layout == "module":  # the pickle names their class, as their torch.load needs
        with zipfile.ZipFile(out) as zf:
            pkl = zf.read(next(n for n in zf.namelist() if n.endswith("/data.pkl")))
        assert f"{layout.module}\n{layout.cls}\n".encode() in pkl
    else:
        raw = torch.load(out, map_location="cpu", weights_only=True)
    if layout.layout == "dataparallel":
        assert raw and all(k.startswith("module.") for k in raw)
    elif layout.layout == "plain":
        assert set(raw) == set(ours.state_dict())

    back = load_official(out, arch, trust_pickles=layout.layout == "module")
    mine, theirs = ours.state_dict(), back.state_dict()
    assert set(mine) == set(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    inputs = _inputs(ours, arch)
    assert inputs, f"no inputs known for {type(ours).__name__}.forward"
    with torch.no_grad():
        a, b = _flat(ours(**inputs)), _flat(back(**inputs))
    assert a and len(a) == len(b)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_module_layout_without_authors_code_says_what_to_pass(tmp_path: Path) -> None:
    state = LOADERS["psp-fully"]({}).state_dict()
    with pytest.raises(ValueError, match="--authors-code"):
        export_official(state, "psp-fully", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_wrong_arch_is_refused_before_writing(tmp_path: Path) -> None:
    state = LOADERS["han"]({}).state_dict()
    with pytest.raises(ValueError, match="do not fit cpsp-fully-ave"):
        export_official(state, "cpsp-fully-ave", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_cli_exports_a_run_best_pt(tmp_path: Path) -> None:
    """The run layout the trainer writes ({"model", "epoch", "preset", "score"}) in, the CPSP
    --resume layout out; a run without best.pt exits 2."""
    model = LOADERS["cpsp-fully-ave"]({})
    run = tmp_path / "runs" / "fully" / "cpsp"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"model": model.state_dict(), "epoch": 3, "preset": {"lr": 1e-3}, "score": 70.0},
               run / "checkpoints" / "best.pt")
    out = tmp_path / "model_best.pth.tar"
    done = subprocess.run(avel_cmd("export-checkpoint", "--run", str(run), "--official-arch",
                                   "cpsp-fully-ave", "--out", str(out)),
                          capture_output=True, text=True, env=cli_env())
    assert done.returncode == 0, done.stderr
    raw = torch.load(out, weights_only=True)
    assert set(raw) == {f"module.{k}" for k in model.state_dict()}
    with pytest.raises(InputError, match="best.pt"):
        export_checkpoint(tmp_path / "runs", "cpsp-fully-ave", out)
    # without --official-arch: the arch the run was trained as (its preset's)
    torch.save({"model": model.state_dict(), "preset": {"arch": "cpsp-fully-ave"}},
               run / "checkpoints" / "best.pt")
    assert export_checkpoint(run, None, tmp_path / "b.pt") == ("cpsp-fully-ave", "dataparallel")
    torch.save({"model": model.state_dict()}, run / "checkpoints" / "best.pt")
    with pytest.raises(InputError, match="--official-arch"):
        export_checkpoint(run, None, tmp_path / "c.pt")
