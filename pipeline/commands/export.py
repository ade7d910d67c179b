"""`avel export`: the feature store and the manifest → the files the authors' code reads."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.options import workdir_option
from pipeline.export.format_names import FORMATS


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
@click.option("--allow-missing", is_flag=True,
              help="ave, llp: write what can be written when a file the format needs cannot be "
                   "made (listed in missing.txt); without it such an export exits 2 unwritten.")
@click.option("--background-workdir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="ave: work directory of the weakly setting's background-only "
                                 "videos (*_noisy.h5); default dataset.files.background_workdir.")
@click.option("--cpsp-resnet", is_flag=True,
              help="ave: also CPSP's ResNet path (Annotations.txt, {split}Set.txt, "
                   "resnet_maps/<split>/<id>.pkl from the resnet_layer3 store).")
def command(workdir: Path, fmt: str, out: Path, dtype: str | None, visual: str,
            allow_missing: bool, background_workdir: Path | None, cpsp_resnet: bool) -> None:
    """Write the store's features and the manifest's labels in an original on-disk format.

    ave: audio_feature.h5, visual_feature.h5, right_labels.h5 (= labels.h5), mil_labels.h5,
    prob_label.h5, labels_closs.h5, {train,val,test}_order.h5; weakly: *_noisy.h5; CMM:
    visual_feature_vec.h5, {train,val,test}_order_match.h5. llp: feats/{vggish,res152,r2plus1d_18}/<id>.npy.
    vggsound-avel: {audio_feature,video_feature,avc_label}/<video_id>.zip, the meta CSV and
    the categories file. Clips without features are listed in missing.txt; README.txt
    records where every array came from.
    """
    from pipeline.export.formats import export_format
    report = export_format(workdir, fmt, out, dtype, visual, allow_missing, background_workdir,
                           cpsp_resnet)
    missing = {k: len(v) for k, v in report.missing.items() if v}
    click.echo(f"exported {report.rows} clips ({fmt}) to {out}: {len(report.files)} files"
               + (f"; without features: {missing}" if missing else "")
               + (f"; NOT written: {', '.join(report.absent)}" if report.absent else ""))
