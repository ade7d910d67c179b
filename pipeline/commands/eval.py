"""`avel eval`: evaluate a trained run (or an official checkpoint) on a split; writes a
per-class table and a localization timeline PNG."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.commands.options import workdir_option
from pipeline.commands.train import parse_overrides


@click.command("eval")
@workdir_option
@click.option("--task", default=None, help="Task of the run (default: train.task).")
@click.option("--model", default=None, help="Model of the run (default: train.model).")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="A checkpoint file instead of the run's best.pt.")
@click.option("--official-arch", default=None,
              help="Treat --checkpoint as an authors' release of this arch (e.g. cpsp-fully-ave).")
@click.option("--trust-pickles", is_flag=True,
              help="Allow whole-module pickles (PSP repo, AVE-ECCV18); read as their tensors only: the "
                   "authors' classes become inert shells, any other callable is refused.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--timelines", type=click.IntRange(min=0), default=6, show_default=True,
              help="Videos to plot (0: no timelines.png).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Preset overrides.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def command(workdir: Path, task: str | None, model: str | None, split: str,
            checkpoint: Path | None, official_arch: str | None, trust_pickles: bool,
            device: str | None, timelines: int, sets: tuple[str, ...], as_json: bool) -> None:
    """Evaluate segment accuracy; write per_class.csv and timelines.png."""
    from models.metrics.eval_report import format_table
    from pipeline.train.stage import evaluate
    result = evaluate(workdir, task=task, model=model, split=split, checkpoint=checkpoint,
                      official_arch=official_arch, trust_pickles=trust_pickles, device=device,
                      n_timelines=timelines, overrides=parse_overrides(sets))
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    if "table" in result:  # task avvp: the ten official numbers
        click.echo(result["table"])
        click.echo(f"report: {result['out_dir']}")
        return
    m = result["metrics"]
    click.echo(format_table(result["per_class"]))
    click.echo(f"{split} accuracy: {m['accuracy']:.2f}%  (chance, majority class: {m['chance']:.2f}%)")
    click.echo(f"report: {result['out_dir']}")
