"""Strict reading of the datasets' small text tables, with errors that name file, line and field."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from pipeline.core.errors import InputError

# the largest list any dataset ships is VGGSound's (~200k rows, ~10 MB); a cap checked before
# reading keeps a runaway file from taking minutes and gigabytes to be refused
MAX_LIST_BYTES = 256 << 20


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file (BOM tolerated), without line endings; empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path)
    size = path.stat().st_size
    if size > MAX_LIST_BYTES:
        raise InputError(f"{size} bytes is over the {MAX_LIST_BYTES >> 20} MB a list file may "
                         "have (VGGSound's 200k rows take 10 MB)", file=path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", file=path, line=line) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise InputError("contains a NUL byte", file=path, line=line)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError("file is empty", file=path)
    return lines


def read_table(path: str | Path, *, sep: str, header: list[str] | None = None,
               required: list[str] | None = None) -> list[tuple[int, dict[str, str]]]:
    """Rows of a delimited file as (line number, {column: value}).

    With `header` the file has none and these are the column names; otherwise the first
    line is the header and must hold every name in `required`. A line whose field count
    differs from the header's is an error (this is how a wrong separator shows up).
    """
    lines = read_lines(path)
    reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=sep, quotechar='"', strict=True)
    try:
        parsed = list(reader)
    except csv.Error as exc:
        raise InputError(f"malformed row: {exc}", file=path, line=reader.line_num) from None
    numbered = [(i + 1, row) for i, row in enumerate(parsed) if any(c.strip() for c in row)]
    if header is None:
        line_no, names = numbered[0]
        names = [n.strip() for n in names]
        numbered = numbered[1:]
        for col in required or []:
            if col not in names:
                hint = ""
                if len(names) == 1 and sep not in names[0]:
                    hint = f" (is the separator {sep!r}? the header has one column: {names[0]!r})"
                raise InputError(f"missing column '{col}'{hint}", file=path, line=line_no, field=col)
    else:
        names = header
    rows = []
    for line_no, cells in numbered:
        if len(cells) != len(names):
            raise InputError(f"expected {len(names)} fields separated by {sep!r}, found {len(cells)}",
                             file=path, line=line_no)
        rows.append((line_no, dict(zip(names, (c.strip() for c in cells)))))
    if not rows:
        raise InputError("file has no data rows", file=path)
    return rows


def to_number(value: str, *, file: str | Path, line: int, field: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"not a number: {value!r}", file=file, line=line, field=field) from None
    if not math.isfinite(number):
        raise InputError(f"not a finite number: {value!r}", file=file, line=line, field=field)
    return number


def split_clip_name(name: str, *, parts: int, file: str | Path, line: int, field: str) -> list[str]:
    """Split `<ytid>_<a>[_<b>]` from the right: YouTube ids contain '_' and '-'."""
    pieces = name.rsplit("_", parts - 1)
    if len(pieces) != parts or not pieces[0]:
        raise InputError("expected '<id>" + "_<number>" * (parts - 1) + f"', got {name!r}",
                         file=file, line=line, field=field)
    return pieces
