"""`avel compare --runs DIR...`: table of run accuracies on stdout + a PNG bar chart."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("compare")
@click.option("--runs", "runs", multiple=True, required=True,
              type=click.Path(exists=True, path_type=Path),
              help="Run directory holding metrics.json (repeatable; also takes several paths "
                   "after one --runs via shell globs: --runs a --runs b).")
@click.argument("more_runs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("compare.png"), show_default=True, help="Where to write the bar chart.")
def command(runs: tuple[Path, ...], more_runs: tuple[Path, ...], out: Path) -> None:
    """Print the accuracy of several runs side by side and plot them as bars."""
    from pipeline.train.compare import compare
    table, png = compare([*runs, *more_runs], out)
    click.echo(table)
    click.echo(f"chart: {png}", err=True)
