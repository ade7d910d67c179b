"""The one dispatch from a format name to its exporter, shared by `avel export` and the
export step of `avel run`, and which format each dataset's original code reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.core import atomic
from pipeline.core.config import Config, load_config, resolve
from pipeline.core.errors import InputError
from pipeline.export import ave as export_ave
from pipeline.export import llp as export_llp
from pipeline.export import vggsound_avel as export_vggsound_avel
from pipeline.export.completeness import IncompleteExport
from pipeline.export.format_names import DATASET_FORMATS, FORMATS
from pipeline.export.transfer import ExportReport


def export_format(workdir: str | Path, fmt: str, out: str | Path, dtype: str | None = None,
                  visual: str = "resnet_layer3", allow_missing: bool = False,
                  background_workdir: Path | None = None, cpsp_resnet: bool = False) -> ExportReport:
    """Write the store's features in format `fmt` under `out`; dtype defaults per format
    (ave float64, as the shipped h5; llp and vggsound-avel float32). An `out` holding an
    export of another format, dtype or visual store is refused before anything is written
    (`EXPORT_STAMP`): the files of two exports would mix there, e.g. float16 zips of one
    beside float32 zips of a killed other. First removes the temp files of a killed export
    under `out` (those whose writer is gone)."""
    dtype = dtype or ("float64" if fmt == "ave" else "float32")
    settings = {"format": fmt, "dtype": dtype, **({"visual": visual} if fmt == "vggsound-avel" else {})}
    check_same_export(Path(out), settings)
    atomic.remove_orphaned_temps(out, recursive=True)  # of a killed export (writer gone)
    report = _export(workdir, fmt, out, dtype, visual, allow_missing, background_workdir, cpsp_resnet)
    atomic.write_text(Path(out) / EXPORT_STAMP, json.dumps(settings, sort_keys=True) + "\n")
    return report


#: what an export leaves in `out` to say which export it is (format, dtype, visual)
EXPORT_STAMP = ".avel-export.json"


def check_same_export(out: Path, settings: dict[str, str]) -> None:
    """Refuse (exit 2, naming the differing setting) to export into a directory that holds an
    export made with other settings; the same settings rewrite it in place."""
    stamp = out / EXPORT_STAMP
    if not stamp.is_file():
        return
    try:
        before = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        before = None
    if not isinstance(before, dict):
        raise InputError("unreadable export stamp; export into another --out, or delete this "
                         "directory first", file=stamp)
    for key, value in settings.items():
        if before.get(key) != value:
            raise InputError(f"{out} holds an export with {key} {before.get(key)}, this one would "
                             f"write {key} {value} and the two would mix; export into another "
                             "--out, or delete that directory first", file=stamp, field=key)


def _export(workdir: str | Path, fmt: str, out: str | Path, dtype: str, visual: str,
            allow_missing: bool, background_workdir: Path | None, cpsp_resnet: bool) -> ExportReport:
    if fmt == "ave":
        orders_dir = None
        if (Path(workdir) / "avel.yaml").is_file():
            files = load_config(workdir).dataset.files
            if "orders_dir" in files:
                orders_dir = resolve(workdir, files["orders_dir"])
            if background_workdir is None and files.get("background_workdir"):
                background_workdir = resolve(workdir, files["background_workdir"])
        return export_ave.export(workdir, out, dtype=dtype, orders_dir=orders_dir,
                                 background_workdir=background_workdir, cpsp_resnet=cpsp_resnet,
                                 allow_missing=allow_missing)
    if fmt == "llp":
        return export_llp.export(workdir, out, dtype=dtype, allow_missing=allow_missing)
    if fmt == "vggsound-avel":
        return export_vggsound_avel.export(workdir, out, visual=visual, dtype=dtype)
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
