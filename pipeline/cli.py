"""The `avel` command line: parses arguments and calls stage functions, nothing more.

Each command lives in `pipeline/commands/<name>.py` as a click command named `command`;
they are found by listing that package, so adding a stage touches no shared file.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import click

import pipeline.commands
from pipeline import __version__
from pipeline.core.errors import explain


class AvelGroup(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:  # every error becomes one line and a code
            code, message = explain(exc)
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                logging.getLogger("avel").exception("traceback (-vv)")
            click.echo(message, err=True)
            ctx.exit(code)


@click.group(cls=AvelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="avel")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def app(verbose: int) -> None:
    """avel: audio-visual event datasets from YouTube ids to trained models.

    Stages, each resumable and shardable: manifest, download, cut, extract, export,
    train, eval; `run` does them in order and `status` shows where a work directory is.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for info in sorted(pkgutil.iter_modules(pipeline.commands.__path__), key=lambda m: m.name):
    module = importlib.import_module(f"pipeline.commands.{info.name}")
    for cmd in getattr(module, "commands", [getattr(module, "command", None)]):
        if cmd is not None:
            app.add_command(cmd)


def main() -> None:
    app(prog_name="avel")


if __name__ == "__main__":
    main()
