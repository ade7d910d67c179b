"""Each configured extractor's weights file: in the cache, and the bytes its name promises.

The file is the one the extractor itself would load (`pretrained_file()` of a frame
extractor; `vggish.pt`, or the TF checkpoint, and the PCA parameters for VGGish), found on an
instance built with random weights, so nothing here duplicates the extractors' table.
torchvision names its files with their sha256's first digits (resnet152-b121ed2d.pth): those
are verified; a converted file has no published digest, so its digest is shown to compare.
"""

from __future__ import annotations

import re
from pathlib import Path

from extractors.base import Extractor
from extractors.frame_extractor import FrameExtractor
from extractors.vggish import DEFAULT_WEIGHTS, PCA_PARAMS, PRETRAINED, VGGishExtractor
from extractors.weights_cache import FETCH_COMMANDS, cache_dir, matches, sha256_of
from pipeline.doctor.report import Check
from pipeline.doctor.scope import Scope

_NAMED_DIGEST = re.compile(r"-([0-9a-f]{8,64})\.pth?$")


def weights_checks(scope: Scope, built: dict[str, Extractor]) -> list[Check]:
    checks = []
    for name, extractor in built.items():
        setting = scope.config.extract.weights.get(name, "pretrained")
        if setting == "random":
            checks.append(Check(f"weights {name}", "ok", "random (seeded; no file needed)"))
            continue
        for path, hint in weights_files(extractor, setting, scope.config.extract.options.get(name, {})):
            checks.append(file_check(scope, name, path, hint))
    return checks


def weights_files(extractor: Extractor, setting: str, options: dict[str, object]) -> list[tuple[Path, str]]:
    """(file, the command that puts it there) for each file `extractor` loads with `setting`."""
    if setting not in PRETRAINED:
        return [(Path(setting).expanduser(), "extract.weights in avel.yaml names this file")]
    if isinstance(extractor, FrameExtractor):
        return [(extractor.pretrained_file(), extractor.fetch_hint())]
    if isinstance(extractor, VGGishExtractor):
        main = "vggish_model.ckpt" if extractor.backend == "tf" else DEFAULT_WEIGHTS
        files = [(cache_dir() / main, FETCH_COMMANDS.get(main, "avel weights fetch vggish"))]
        if options.get("pca") in PRETRAINED:
            hint = FETCH_COMMANDS.get(PCA_PARAMS, "avel weights fetch vggish")
            files.append((cache_dir() / PCA_PARAMS, hint))
        return files
    return []


def file_check(scope: Scope, name: str, path: Path, hint: str) -> Check:
    label = f"weights {name}"
    if not path.is_file():
        status = scope.severity("extract") if scope.has_config else "warn"
        return Check(label, status, f"{path} missing; get it with `{hint}`")
    if not scope.verify_weights:
        return Check(label, "ok", f"{path} present (checksum not verified)")
    digest = sha256_of(path)
    named = _NAMED_DIGEST.search(path.name)
    if named is None:
        return Check(label, "ok", f"{path} sha256 {digest[:16]}... (no published digest to compare)")
    if matches(digest, named[1]):
        return Check(label, "ok", f"{path} sha256 {digest[:16]}... matches its name")
    return Check(label, scope.severity("extract"), f"{path} sha256 {digest[:16]}... does not match the "
                 f"{named[1]} in its name (damaged?); fetch it again with `{hint}`")
