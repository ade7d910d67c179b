"""`avel doctor`: what this machine lacks for the stages (tools, GPU, weights, access, disk)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("doctor")
@click.option("--workdir", "-w", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Work directory (its avel.yaml, when present, sets what is checked).")
@click.option("--stages", default=None, help="Stages about to run (default: download,cut,extract): "
              "what they need is a blocker, the rest a warning.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: {checks: [...], exit_code}.")
@click.option("--no-verify", is_flag=True, help="Do not hash the cached weights files.")
def command(workdir: Path, stages: str | None, as_json: bool, no_verify: bool) -> None:
    """Check tools, GPU, weights, access and disk; exit 0 fine, 2 a blocker, 5 workdir unwritable."""
    from pipeline.doctor.checks import run_checks, scope_for
    from pipeline.doctor.report import exit_code, render_json, render_text
    from pipeline.run.stages import parse_stages
    checks = run_checks(scope_for(workdir, parse_stages(stages), verify_weights=not no_verify))
    click.echo(render_json(checks) if as_json else render_text(checks))
    raise SystemExit(exit_code(checks))
