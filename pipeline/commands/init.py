"""`avel init`: write a starting avel.yaml for a dataset from manifests/<dataset>.yaml."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from pipeline.commands.options import workdir_option
from pipeline.core import atomic
from pipeline.core.config import DATASETS, DEFAULT_ALLOW, dataset_preset, parse_config
from pipeline.core.errors import InputError
from pipeline.core.workdir import Workdir


def init_workdir(workdir: str | Path, dataset: str, force: bool = False,
                 local_videos: str | None = None) -> Path:
    """Write `avel.yaml` (refusing to overwrite one unless `force`) and return its path.
    `local_videos`: a folder of the dataset's videos, read instead of downloading."""
    wd = Workdir(workdir)
    if wd.config.exists() and not force:
        raise InputError("a config already exists; use --force to overwrite it", file=wd.config)
    preset = dataset_preset(dataset)
    config = preset["config"]
    if local_videos:
        # the folder as the user typed it names a place relative to their current directory;
        # the config's relative paths are read against the work directory, so write it absolute
        videos_dir = str(Path(local_videos).expanduser().resolve())
        config["dataset"].update({"source": "local", "videos_dir": videos_dir,
                                  "video_ext": [".mp4", ".mkv", ".webm", ".avi", ".mov"]})
        config.setdefault("download", {})["local_files"] = "hardlink"
    # the accepted defects, written out so a user sees them (cut.allow adds to these)
    config.setdefault("cut", {}).setdefault("allow", list(DEFAULT_ALLOW))
    parse_config(config, f"manifests/{dataset}.yaml")  # what we write must be valid
    wd.root.mkdir(parents=True, exist_ok=True)
    text = (f"# avel config for {preset['title']}\n# {preset['description'].strip()}\n"
            "# Relative paths are resolved against this directory.\n"
            + yaml.safe_dump(config, sort_keys=False))
    atomic.write_text(wd.config, text)
    return wd.config


@click.command("init")
@click.option("--dataset", required=True, type=click.Choice(DATASETS))
@click.option("--force", is_flag=True, help="Overwrite an existing avel.yaml.")
@click.option("--local-videos", type=click.Path(file_okay=False), default=None,
              help="Read the videos from this folder (<video_id>.<ext>) instead of downloading.")
@workdir_option
def command(dataset: str, force: bool, workdir: Path, local_videos: str | None) -> None:
    """Write a starting avel.yaml carrying the original recipes for DATASET."""
    path = init_workdir(workdir, dataset, force, local_videos)
    click.echo(str(path))
