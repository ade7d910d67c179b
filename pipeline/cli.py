"""The `avel` command line: parses arguments and calls stage functions, nothing more.

Each command lives in `pipeline/commands/<name>.py` as a click command; `COMMANDS` below
lists them (the `models.registry` table shape) and a command's module is imported only when
that command runs. `avel --help` lists them from `SUMMARIES` (each command's first sentence,
pinned by tests/test_registry.py) so that it does not import torch for a listing.

Import rule for `pipeline/commands/`: at the top of a command module only what the click
definition needs (click, `pipeline.commands.options`, light name tables such as
`pipeline.export.format_names`, `pipeline.run.stage_names`, `models.weights.layouts`); the
code a command runs (stage modules, which bring torch, pandas, h5py) is imported inside its
command function. So `avel X --help` loads none of them and answers in about a second
(tests/test_cli_help_light.py), and the stage imports are still plain `from ... import`
lines a reader finds at the top of the function (tests/test_import_graph.py counts them for
cycles). Everywhere else imports stay at the top of the module.
"""

from __future__ import annotations

import logging
import sys

import click

from models.registry import LazyTable
from pipeline import __version__
from pipeline.core.errors import explain

#: `avel NAME` → "module:click command"
COMMANDS = LazyTable("command", {
    "compare": "pipeline.commands.compare:command",
    "cut": "pipeline.commands.cut:command",
    "demo": "pipeline.commands.demo:command",
    "doctor": "pipeline.commands.doctor:command",
    "download": "pipeline.commands.download:command",
    "eval": "pipeline.commands.eval:command",
    "export": "pipeline.commands.export:command",
    "export-checkpoint": "pipeline.commands.export_checkpoint:command",
    "extract": "pipeline.commands.extract:extract_command",
    "import": "pipeline.commands.import_:command",
    "index": "pipeline.commands.extract:index_command",
    "init": "pipeline.commands.init:command",
    "manifest": "pipeline.commands.manifest:command",
    "run": "pipeline.commands.run:command",
    "status": "pipeline.commands.status:command",
    "train": "pipeline.commands.train:command",
    "weights": "pipeline.commands.weights:weights_group",
})
SUMMARIES = {
    "compare": "Print the accuracy of several runs side by side and plot them as bars.",
    "cut": "Cut each clip's audio (16 kHz PCM) and frames (JPEG, per the frames recipe).",
    "demo": "Generate, serve, download, cut, extract (random weights), train CPSP + AV_att, evaluate.",
    "doctor": "Check tools, GPU, weights, access and disk; exit 0 fine, 2 a blocker, 5 workdir unwritable.",
    "download": "Download every pending clip of the shard into raw/<shard>/ (resumable).",
    "eval": "Evaluate segment accuracy; write per_class.csv and timelines.png.",
    "export": "Write the store's features and the manifest's labels in an original on-disk format.",
    # click's short help also ends at "(module." (the first word ending in a full stop)
    "export-checkpoint": "Write a trained run's weights as the authors' repository saves them (module.",
    "extract": "Run extractors over this shard's cut clips in one pass (each clip read once); "
               "resumable per clip and extractor; prints one JSON summary per extractor.",
    "import": "Read the authors' released features into the feature store, one row per manifest "
              'clip, with attrs weights="imported: <path>".',
    "index": "Fold leftover parts into shard files and rebuild features/<name>/index.h5.",
    "init": "Write a starting avel.yaml carrying the original recipes for DATASET.",
    "manifest": "Read the dataset's list files and write manifest.parquet (one row per clip).",
    "run": "Run the stages in order, skipping finished work; exit 0 done, 1 failures, 4 pending.",
    "status": "Show per stage and shard how many clips are done, failed (by reason) or pending.",
    "train": "Train a model on the extracted features (checkpoints, metrics.json, TensorBoard, curves).",
    "weights": "Fetch released weights into the cache ($AVEL_HOME, default ~/.cache/avel) and convert them.",
}


class AvelGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return COMMANDS.names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return COMMANDS[cmd_name] if cmd_name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listing = click.Group(commands=[click.Command(name, help=SUMMARIES[name]) for name in COMMANDS])
        listing.format_commands(ctx, formatter)

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


def main() -> None:
    app(prog_name="avel")


if __name__ == "__main__":
    main()
