"""The one dispatch from a format name to its exporter, shared by `avel export` and the
export step of `avel run`, and which format each dataset's original code reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core.config import Config, load_config, resolve
from pipeline.core.errors import InputError
from pipeline.export import ave as export_ave
from pipeline.export import llp as export_llp
from pipeline.export import vggsound_avel as export_vggsound_avel
from pipeline.export.completeness import IncompleteExport
from pipeline.export.transfer import ExportReport

FORMATS = ("ave", "llp", "vggsound-avel")
# dataset → the format its authors' training code reads (VGGSound itself has none)
DATASET_FORMATS = {"ave": "ave", "llp": "llp", "vggsound-avel": "vggsound-avel",
                   "vggsound-avel50k": "vggsound-avel"}


def export_format(workdir: str | Path, fmt: str, out: str | Path, dtype: str | None = None,
                  visual: str = "resnet_layer3", allow_missing: bool = False,
                  background_workdir: Path | None = None, cpsp_resnet: bool = False) -> ExportReport:
    """Write the store's features in format `fmt` under `out`; dtype defaults per format
    (ave float64, as the shipped h5; llp and vggsound-avel float32)."""
    if fmt == "ave":
        orders_dir = None
        if (Path(workdir) / "avel.yaml").is_file():
            files = load_config(workdir).dataset.files
            if "orders_dir" in files:
                orders_dir = resolve(workdir, files["orders_dir"])
            if background_workdir is None and files.get("background_workdir"):
                background_workdir = resolve(workdir, files["background_workdir"])
        return export_ave.export(workdir, out, dtype=dtype or "float64", orders_dir=orders_dir,
                                 background_workdir=background_workdir, cpsp_resnet=cpsp_resnet,
                                 allow_missing=allow_missing)
    if fmt == "llp":
        return export_llp.export(workdir, out, dtype=dtype or "float32", allow_missing=allow_missing)
    if fmt == "vggsound-avel":
        return export_vggsound_avel.export(workdir, out, visual=visual, dtype=dtype or "float32")
    raise InputError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}", field="--format")


def export_for_run(workdir: str | Path, config: Config) -> dict[str, Any]:
    """`avel run`'s export step: the dataset's own format into `<workdir>/export/<format>`."""
    fmt = DATASET_FORMATS.get(config.dataset.name)
    if fmt is None:
        raise InputError(f"dataset {config.dataset.name!r} has no original export format "
                         f"(formats are for {', '.join(sorted(DATASET_FORMATS))})",
                         file=Path(workdir) / "avel.yaml", field="dataset.name")
    out = Path(workdir) / "export" / fmt
    try:
        report = export_format(workdir, fmt, out)
    except IncompleteExport as exc:  # `avel run` has no --allow-missing: say what has one
        raise IncompleteExport(exc.listing, exc.out_dir,
                               f"`avel export -w {workdir} --format {fmt} --out {out} "
                               "--allow-missing` writes the rest (then leave export out of "
                               "`avel run --stages`)") from None
    return {"format": fmt, "out": str(out), "rows": report.rows, "files": len(report.files),
            "missing": {k: len(v) for k, v in report.missing.items() if v}}
