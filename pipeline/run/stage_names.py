"""The names of the stages `avel run` knows, in pipeline order, and parsing `--stages`.

Apart from `pipeline.run.stages` (which imports every stage's code) so that the command
line can describe and check `--stages` without loading torch.
"""

from __future__ import annotations

from pipeline.core.errors import InputError

SHARD_STAGES = ("download", "cut", "extract")
GLOBAL_STAGES = ("export", "train")
ALL_STAGES = SHARD_STAGES + GLOBAL_STAGES
DEFAULT_STAGES = ("download", "cut", "extract")


def parse_stages(text: str | None) -> list[str]:
    if not text:
        return list(DEFAULT_STAGES)
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in ALL_STAGES]
    if unknown:
        raise InputError(f"unknown stage {unknown[0]!r}; stages are {', '.join(ALL_STAGES)}",
                         field="--stages")
    return [s for s in ALL_STAGES if s in names]  # always in pipeline order
