"""`avel status`: done / failed (by reason) / pending per stage, and feature provenance."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.commands.options import workdir_option


@click.command("status")
@workdir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable counts on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Also show every shard.")
def command(workdir: Path, as_json: bool, verbose: bool) -> None:
    """Show per stage and shard how many clips are done, failed (by reason) or pending."""
    from pipeline.run.status import collect, render
    report = collect(workdir)
    click.echo(json.dumps(report, indent=2) if as_json else render(report, verbose))
