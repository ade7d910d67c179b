"""Errors a user can act on: each names the file, the line (or key) and the field at fault.

The CLI turns `InputError` into exit code 2 with its message and no traceback, so a
bad manifest or config fails at once and before anything is written.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A manifest, label file or config that is not well-formed."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None,
                 line: int | None = None, field: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.reason = message
        where = []
        if self.file is not None:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ": ".join([", ".join(where)]) if where else ""
        super().__init__(f"{prefix}: {message}" if prefix else message)


class StageStopped(Exception):
    """A stage stopped on purpose (e.g. throttled by YouTube); everything done so far is kept."""

    def __init__(self, message: str, exit_code: int = 3) -> None:
        super().__init__(message)
        self.exit_code = exit_code
