"""`avel train`: train a PSP/CPSP/SSPSP (or any registered family) preset on the workdir's
features; prints the test accuracy next to chance."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from pipeline.commands.options import workdir_option


def parse_overrides(items: tuple[str, ...]) -> dict:
    """`--set key=value` pairs, values parsed as YAML (numbers, lists, booleans)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise click.BadParameter(f"{key.strip()}: not a YAML value "
                                     f"({getattr(exc, 'problem', None) or 'unparsable'})",
                                     param_hint="--set") from None
    return out


@click.command("train")
@workdir_option
@click.option("--task", default=None, help="ave-fully | ave-weakly | vggsound-avel-fully | "
              "vggsound-avel-weakly | avvp (default: train.task)")
@click.option("--model", default=None,
              help="psp | cpsp | sspsp | psp-cvpr21 (AVE, VGGSound-AVEL); han | psp | cpsp (avvp); "
                   "av_att | av_att_weak | dmrn | avel | avsdn | cmran | cmbs | cmm (AVE baselines) "
                   "(default: train.model)")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Override the preset's epoch count (a run may resume with more).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any preset value (repeatable), e.g. --set precision=float64.")
@click.option("--no-resume", is_flag=True, help="Start over instead of resuming last.pt.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(workdir: Path, task: str | None, model: str | None, epochs: int | None,
            device: str | None, sets: tuple[str, ...], no_resume: bool, as_json: bool) -> None:
    """Train a model on the extracted features (checkpoints, metrics.json, TensorBoard, curves)."""
    from pipeline.train.stage import train
    overrides = parse_overrides(sets)
    if epochs is not None:
        overrides["epochs"] = epochs
    result = train(workdir, task=task, model=model, overrides=overrides, device=device,
                   resume=not no_resume)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    click.echo(f"run: {result['run_dir']}")
    best = result["best"]
    click.echo(f"best {best.get('metric')}: {best.get('score'):.2f} at epoch {best.get('epoch')}")
    if "test_table" in result:  # task avvp
        click.echo(result["test_table"])
    if "test_accuracy" in result:
        click.echo(f"test accuracy: {result['test_accuracy']:.2f}%  "
                   f"(chance, majority class: {result['chance_accuracy']:.2f}%)")
