"""`avel demo`: every stage on a generated dataset served on 127.0.0.1, offline, on CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click


@click.command("demo")
@click.option("--workdir", "-w", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-run"), show_default=True)
@click.option("--clips", default=40, show_default=True, help="Generated clips (>= 4 per class).")
@click.option("--classes", default=4, show_default=True, help="Event classes (1-6).")
@click.option("--epochs", default=30, show_default=True)
def command(workdir: Path, clips: int, classes: int, epochs: int) -> None:
    """Generate, serve, download, cut, extract (random weights), train CPSP + AV_att, evaluate."""
    from pipeline.demo.runner import DemoSize, render_summary, run_demo
    if importlib.util.find_spec("moviepy") is None:
        raise click.UsageError("the demo renders its clips with moviepy, which comes with the demo "
                               "extra: pip install 'avel[demo]'")
    summary = run_demo(workdir, DemoSize(clips=clips, classes=classes, epochs=epochs))
    click.echo(render_summary(summary))
