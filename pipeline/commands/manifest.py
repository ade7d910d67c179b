"""`avel manifest`: build manifest.parquet from the dataset's list files."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.options import workdir_option
from pipeline.core.config import load_config


@click.command("manifest")
@workdir_option
def command(workdir: Path) -> None:
    """Read the dataset's list files and write manifest.parquet (one row per clip)."""
    from pipeline.datasets.manifest import build_manifest
    table = build_manifest(workdir, load_config(workdir))
    splits = table["split"].value_counts().to_dict()
    click.echo(f"{len(table)} clips: " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())))
