"""`avel import`: released feature files of the original formats → the feature store."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.options import workdir_option
from pipeline.core.config import load_config

FORMATS = ("ave", "llp", "vggsound-avel")


def run_import(src: Path, workdir: Path, fmt: str, trust_pickles: bool = False,
               visual: str = "resnet_layer3", store_dtype: str | None = None):  # type: ignore[no-untyped-def]
    """Dispatch to the format's module; returns its ImportReport. The store dtype defaults
    to the config's extract.store_dtype, as for extracted features."""
    from pipeline.export import ave as export_ave
    from pipeline.export import llp as export_llp
    from pipeline.export import vggsound_avel as export_vggsound_avel
    if store_dtype is None:
        has_config = (Path(workdir) / "avel.yaml").is_file()
        store_dtype = load_config(workdir).extract.store_dtype if has_config else "float32"
    if fmt == "ave":
        return export_ave.import_(src, workdir, store_dtype=store_dtype)
    if fmt == "llp":
        return export_llp.import_(src, workdir, store_dtype=store_dtype)
    return export_vggsound_avel.import_(src, workdir, trust_pickles=trust_pickles, visual=visual,
                                        store_dtype=store_dtype)


@click.command("import")
@workdir_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
@click.option("--from", "src", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="Directory holding the released files.")
@click.option("--trust-pickles", is_flag=True,
              help="vggsound-avel only: allow unpickling the zips' .pkl files, which can run "
                   "code; pass it only for files from a source you trust.")
@click.option("--visual", type=click.Choice(["resnet_layer3", "vgg19"]), default="resnet_layer3",
              show_default=True, help="vggsound-avel: what video_feature/ holds.")
@click.option("--store-dtype", type=click.Choice(["float32", "float16", "float64"]), default=None,
              help="dtype of the stored rows (default: extract.store_dtype of the config).")
def command(workdir: Path, fmt: str, src: Path, trust_pickles: bool, visual: str,
            store_dtype: str | None) -> None:
    """Read the authors' released features into the feature store, one row per manifest
    clip, with attrs weights="imported: <path>". Every file's shape and dtype is checked;
    a bad file stops the import with its name and the store keeps what it had."""
    report = run_import(src, workdir, fmt, trust_pickles, visual, store_dtype)
    for name, n in report.stored.items():
        click.echo(f"{name}: {n} clips imported")
    if report.skipped:
        click.echo(f"skipped {len(report.skipped)} (no file for the clip); first: {report.skipped[0]}")
