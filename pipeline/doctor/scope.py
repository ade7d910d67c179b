"""What a doctor run is about: the work directory, its config and the stages to come.

The same finding weighs differently by scope: no JS runtime blocks a YouTube download but
not an extract, a missing weights file blocks extract but not download.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.config import Config


@dataclass(frozen=True)
class Scope:
    workdir: Path
    config: Config
    stages: list[str] = field(default_factory=lambda: ["download", "cut", "extract"])
    # hash every cached weights file (seconds per file); `avel run` only looks for them
    verify_weights: bool = True
    # False when the work directory has no avel.yaml: the doctor then looks at every
    # extractor's weights, and a missing one is a warning, since none is known to be used
    has_config: bool = True

    def runs(self, stage: str) -> bool:
        return stage in self.stages

    def severity(self, stage: str) -> str:
        """"blocker" when `stage` is about to run, else "warn"."""
        return "blocker" if self.runs(stage) else "warn"
