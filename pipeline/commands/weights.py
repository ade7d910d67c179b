"""`avel weights ...`: get and convert pretrained weights into the cache ($AVEL_HOME).

The visual extractors' commands live in `pipeline.commands.weights_vgg19` and are added
here, so this group is the one place users look for weights.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.weights_vgg19 import convert_vgg19_keras, fetch_torchvision
from pipeline.core.errors import InputError


@click.group("weights")
def weights_group() -> None:
    """Fetch released weights into the cache ($AVEL_HOME, default ~/.cache/avel) and convert them."""


@weights_group.command("convert-vggish")
@click.argument("ckpt", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
def convert_vggish(ckpt: Path, out: Path) -> None:
    """Convert the TF-slim VGGish checkpoint CKPT (e.g. vggish_model.ckpt) to a PyTorch OUT.pt."""
    from extractors.vggish_convert import convert_checkpoint
    from extractors.weights_cache import sha256_of
    try:
        state = convert_checkpoint(ckpt, out)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise InputError(str(exc), file=str(ckpt)) from exc
    click.echo(f"{out}\t{len(state)} tensors\tsha256 {sha256_of(out)}")


@weights_group.command("fetch")
@click.argument("what", type=click.Choice(["vggish"]))
@click.option("--mirror", default=None, help="Base URL serving the same file names.")
@click.option("--force", is_flag=True, help="Download again even if cached.")
def fetch_weights(what: str, mirror: str | None, force: bool) -> None:
    """Download released weights (sha256-checked) into the cache."""
    from extractors.vggish_release import fetch_vggish
    try:
        paths = fetch_vggish(mirror=mirror, force=force)
    except (OSError, ValueError) as exc:  # network errors are OSErrors (URLError, timeouts)
        raise click.ClickException(f"fetching {what} weights failed: {exc}") from exc
    for name, path in paths.items():
        click.echo(f"{name}\t{path}")


weights_group.add_command(convert_vgg19_keras)
weights_group.add_command(fetch_torchvision)
command = weights_group
