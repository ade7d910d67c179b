"""A doctor check's result as data, and its two renderings (text for people, JSON for scripts).

A check is `ok`, `warn` (the stages can run, but something is off: an old yt-dlp, no GPU) or
`blocker` (a stage would fail on it). `avel doctor` exits with the first blocker's code: 5
when the work directory cannot be written (as every command does), 2 for any other blocker;
0 when there is none, warnings or not.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

from pipeline.core.errors import EXIT_BAD_INPUT

Status = Literal["ok", "warn", "blocker"]
MARKS: dict[str, str] = {"ok": "ok", "warn": "WARN", "blocker": "BLOCKER"}


@dataclass(frozen=True)
class Check:
    name: str  # short and stable, e.g. "ffmpeg", "weights vgg19": scripts key on it
    status: Status
    detail: str  # what was found, and for warn/blocker what to do about it
    exit_code: int = EXIT_BAD_INPUT  # the command's exit code when this is the first blocker


def blockers(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == "blocker"]


def exit_code(checks: list[Check]) -> int:
    """0 without blockers, else the first blocker's code."""
    found = blockers(checks)
    return found[0].exit_code if found else 0


def render_text(checks: list[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0)
    lines = [f"{MARKS[c.status]:<7}  {c.name:<{width}}  {c.detail}" for c in checks]
    counts = {s: sum(c.status == s for c in checks) for s in MARKS}
    lines.append(f"{counts['ok']} ok, {counts['warn']} warnings, {counts['blocker']} blockers")
    return "\n".join(lines)


def render_json(checks: list[Check]) -> str:
    return json.dumps({"checks": [asdict(c) for c in checks], "exit_code": exit_code(checks)}, indent=2)


def blocker_message(checks: list[Check]) -> str:
    """One line naming every blocker: what `avel run` stops with."""
    return "avel doctor found blockers: " + "; ".join(f"{c.name}: {c.detail}" for c in blockers(checks))
