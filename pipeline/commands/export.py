"""`avel export`: the feature store and the manifest → the files the authors' code reads."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.options import workdir_option
from pipeline.export.formats import FORMATS, export_format


@click.command("export")
@workdir_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True,
              help="Which original code the files are for.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write into (created; files in it are replaced atomically).")
@click.option("--dtype", type=click.Choice(["float64", "float32", "float16"]), default=None,
              help="Feature dtype in the files (default: ave float64, as the shipped h5; "
                   "llp and vggsound-avel float32).")
@click.option("--visual", type=click.Choice(["resnet_layer3", "vgg19"]), default="resnet_layer3",
              show_default=True, help="vggsound-avel: which visual features go into video_feature/.")
def command(workdir: Path, fmt: str, out: Path, dtype: str | None, visual: str) -> None:
    """Write the store's features and the manifest's labels in an original on-disk format.

    ave: audio_feature.h5, visual_feature.h5, right_labels.h5, mil_labels.h5, prob_label.h5,
    labels_closs.h5 and {train,val,test}_order.h5. llp: feats/{vggish,res152,r2plus1d_18}/<id>.npy.
    vggsound-avel: {audio_feature,video_feature,avc_label}/<video_id>.zip, the meta CSV and
    the categories file. Clips without features are listed in missing.txt; README.txt
    records where every array came from.
    """
    report = export_format(workdir, fmt, out, dtype, visual)
    missing = {k: len(v) for k, v in report.missing.items() if v}
    click.echo(f"exported {report.rows} clips ({fmt}) to {out}: {len(report.files)} files"
               + (f"; without features: {missing}" if missing else ""))
