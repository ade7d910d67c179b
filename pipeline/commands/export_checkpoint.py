"""`avel export-checkpoint`: a run's best.pt → the checkpoint file an authors' script loads."""

from __future__ import annotations

from pathlib import Path

import click

from models.weights.layouts import LAYOUTS
from pipeline.core.errors import InputError


def checkpoint_of(run: Path) -> Path:
    """The file to export: `run` itself if a file, else the run's checkpoints/best.pt."""
    if run.is_file():
        return run
    best = run / "checkpoints" / "best.pt"
    if not best.is_file():
        raise InputError("no checkpoints/best.pt (train the run first, or pass the file)",
                         file=run)
    return best


def run_arch(checkpoint: Path) -> str | None:
    """The arch recorded in an avel checkpoint's preset (trainer's best.pt), if any."""
    import torch
    obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    preset = obj.get("preset") if isinstance(obj, dict) else None
    return preset.get("arch") if isinstance(preset, dict) else None


def export_checkpoint(run: Path, arch: str | None, out: Path,
                      authors_code: Path | None = None) -> tuple[str, str]:
    """Export; returns (arch, layout used). Bad input becomes an InputError (exit 2)."""
    from models.weights.checkpoints import read_state_dict
    from models.weights.export import export_official
    source = checkpoint_of(Path(run))
    arch = arch or run_arch(source)
    if arch is None:
        raise InputError("no arch recorded in the checkpoint; pass --official-arch",
                         file=source, field="--official-arch")
    try:
        state = read_state_dict(source)
        return arch, export_official(state, arch, out, authors_code).layout
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise InputError(str(exc).strip("'\""), file=source, field="--official-arch") from None


@click.command("export-checkpoint")
@click.option("--run", "run", type=click.Path(exists=True, path_type=Path), required=True,
              help="Run directory (runs/<task>/<model>, reads checkpoints/best.pt) or a .pt file.")
@click.option("--official-arch", "arch", type=click.Choice(sorted(LAYOUTS)), default=None,
              help="The authors' arch whose loader must read the file (default: the arch "
                   "the run was trained as, from best.pt's preset).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write (atomically).")
@click.option("--authors-code", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="Checkout of the authors' repo; needed for archs whose "
              "scripts torch.load a whole module (psp-fully/-weakly, av_att, av_att_weak, dmrn).")
def command(run: Path, arch: str | None, out: Path, authors_code: Path | None) -> None:
    """Write a trained run's weights as the authors' repository saves them (module. prefix for
    DataParallel loaders, bare state_dict, or their whole pickled module)."""
    arch, layout = export_checkpoint(run, arch, out, authors_code)
    click.echo(f"wrote {out} ({arch}, {layout} layout: {LAYOUTS[arch].loader})")
