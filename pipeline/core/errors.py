"""Errors a user can act on: each names the file, the line (or key) and the field at fault.

The CLI turns `InputError` into exit code 2 with its message and no traceback, so a
bad manifest or config fails at once and before anything is written.
"""

from __future__ import annotations

import errno
import os
import sqlite3
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


# Exit codes every command shares (README "Exit codes"): 0 done, 1 some clips failed,
# 2 bad input, 3 throttled, 4 clips still pending, 5 the work directory cannot be written,
# 6 the environment cannot do the work (the download's yt-dlp lacks a JS runtime, or one
# reason failed every attempt in a row), 70 an unexpected error (a bug: rerun with -vv and
# report the traceback), 130 interrupted.
EXIT_BAD_INPUT, EXIT_CANNOT_WRITE, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 5, 70, 130
EXIT_THROTTLED, EXIT_ENVIRONMENT = 3, 6
_CANNOT_WRITE = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted", errno.ENOSPC: "no space left on device",
                 errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large"}


def cannot_write(exc: BaseException) -> bool:
    """Whether `exc` says the work directory cannot be written (exit 5), not that an input
    is bad: a full disk, a quota, a read-only or forbidden place, a file size limit."""
    return isinstance(exc, OSError) and exc.errno in _CANNOT_WRITE


def printable_path(path: str | Path) -> str:
    """`path` as a message can print it: bytes that are not UTF-8 (held by Python as lone
    surrogates, which no UTF-8 stream can write) shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def require_utf8_path(path: str | Path, what: str = "work directory") -> None:
    """Refuse (exit 2) a path whose name is not UTF-8: pyarrow, HDF5 and SQLite take paths as
    UTF-8 text and fail on it deep inside a stage."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"the {what}'s path is not valid UTF-8 (the parquet, HDF5 and SQLite "
                         "libraries cannot open it); rename it", file=printable_path(path)) from None


def first_line(exc: BaseException, limit: int = 400) -> str:
    """The first line of an exception's message, at most `limit` characters, or its type's
    name when the message is empty: what an error message quotes of a library's error."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def explain(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an exception that reached the command line, so the user
    reads what to fix instead of a traceback; `-vv` still prints the traceback."""
    if isinstance(exc, InputError):
        return exc.exit_code, f"error: {exc}"
    if isinstance(exc, StageStopped):
        return exc.exit_code, f"stopped: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted: finished clips are kept; rerun to go on"
    if isinstance(exc, OSError) and exc.errno in _CANNOT_WRITE:
        where = exc.filename or "the work directory"
        why = _CANNOT_WRITE[exc.errno]
        if exc.strerror and exc.strerror != os.strerror(exc.errno):  # e.g. how much room it needs
            why += f": {exc.strerror}"
        return EXIT_CANNOT_WRITE, (f"error: {where}: cannot write ({why}); "
                                   "finished work is kept, fix this and rerun")
    if isinstance(exc, sqlite3.DatabaseError):
        return EXIT_BAD_INPUT, f"error: a ledger under state/ is not readable ({first_line(exc)})"
    if isinstance(exc, FileNotFoundError):
        return EXIT_BAD_INPUT, f"error: {exc.filename or ''}: no such file ({first_line(exc)})"
    if isinstance(exc, OSError) and ("HDF5" in str(exc) or "Unable to" in str(exc)
                                     or "truncated" in str(exc)):
        return EXIT_BAD_INPUT, f"error: unreadable HDF5 file ({first_line(exc)})"
    if isinstance(exc, UnicodeEncodeError) and "surrogates not allowed" in str(exc):
        return EXIT_BAD_INPUT, ("error: a path holds bytes that are not UTF-8, which the file "
                                f"libraries cannot open ({first_line(exc)}); rename it")
    name = type(exc).__name__
    if name in ("ArrowInvalid", "ArrowIOError", "ArrowException"):
        return EXIT_BAD_INPUT, f"error: unreadable parquet file ({first_line(exc)})"
    return EXIT_INTERNAL, (f"internal error: {name}: {first_line(exc)} "
                           "(rerun with -vv for the traceback)")
