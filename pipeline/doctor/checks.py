"""Every doctor check in order, for `avel doctor` and before `avel run`'s first stage."""

from __future__ import annotations

from pathlib import Path

from extractors import catalog
from extractors.base import Extractor
from pipeline.core.config import Config, DatasetConfig, load_config
from pipeline.core.workdir import Workdir
from pipeline.doctor.access import cache_check, cookies_check, proxy_check, workdir_check
from pipeline.doctor.disk import disk_check
from pipeline.doctor.gpu import cuda_check, jpeg_decode_check, torch_check
from pipeline.doctor.report import Check
from pipeline.doctor.scope import Scope
from pipeline.doctor.tools import ffmpeg_checks, js_runtime_check, ytdlp_check
from pipeline.doctor.weights import weights_checks
from pipeline.extract.stage import build_extractor, settings_for


def scope_for(workdir: str | Path, stages: list[str], *, verify_weights: bool = True) -> Scope:
    """The scope of `avel doctor`: the work directory's config when it has one; otherwise the
    defaults with every extractor in the catalog, so the whole weights cache is looked at."""
    root = Workdir(workdir).root
    has_config = Workdir(root).config.is_file()
    if has_config:
        config = load_config(root)
    else:
        config = Config(dataset=DatasetConfig(name="ave"))
        config.extract.extractors = catalog.names()
    return Scope(root, config, stages, verify_weights, has_config)


def build_random(config: Config) -> dict[str, Extractor]:
    """Each configured extractor with random weights (seconds): what its weights file is
    and what it stores per clip. An unknown name or option raises InputError, as `avel run`."""
    return {name: build_extractor(name, settings_for(config, name), weights="random")
            for name in config.extract.extractors}


def run_checks(scope: Scope, built: dict[str, Extractor] | None = None) -> list[Check]:
    built = build_random(scope.config) if built is None else built
    return [
        workdir_check(scope),
        *ffmpeg_checks(scope),
        ytdlp_check(scope),
        *js_runtime_check(scope),
        cookies_check(scope),
        proxy_check(scope),
        torch_check(scope),
        cuda_check(scope),
        jpeg_decode_check(scope),
        cache_check(scope),
        *weights_checks(scope, built),
        disk_check(scope, built),
    ]
