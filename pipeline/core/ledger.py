"""Per-clip state of one stage on one shard, in a SQLite file owned by that shard's worker.

One file per (stage, shard) means one writer per file: no locking across nodes and no
shared SQLite on a network filesystem. Every update is its own transaction, so a process
killed at any point leaves the ledger readable and each clip in exactly one state.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.errors import InputError

PENDING, DONE, FAILED = "pending", "done", "failed"

SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    clip_id    TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    reason     TEXT,
    permanent  INTEGER NOT NULL DEFAULT 0,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    checksum   TEXT,
    detail     TEXT,
    info       TEXT
);
CREATE INDEX IF NOT EXISTS clips_status ON clips (status);
"""


@dataclass(frozen=True)
class Entry:
    clip_id: str
    status: str
    reason: str | None
    permanent: bool
    attempts: int
    created_at: float
    updated_at: float
    checksum: str | None
    detail: str | None
    info: dict[str, Any]


class Ledger:
    """Open (creating if needed) the ledger at `path`; `read_only` opens an existing one without
    writing anything, so `avel status` works on a read-only work directory.

    A file that is not a sound SQLite ledger (truncated, overwritten) is an `InputError` naming
    it, found at open by SQLite's `quick_check` (milliseconds for a shard's few thousand rows)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        try:
            if read_only:
                self._db = _connect_read_only(self.path)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(SCHEMA)
            check = self._db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(str(check[0] if check else "no answer"))
            self._db.execute("SELECT COUNT(*) FROM clips").fetchone()
        except sqlite3.DatabaseError as exc:
            if "readonly" in str(exc) or "unable to open" in str(exc):
                raise PermissionError(errno.EROFS, f"cannot write the ledger ({exc})",
                                      str(self.path)) from None
            raise InputError(f"not a readable ledger ({exc}); move it aside and rerun the stage, "
                             "which rebuilds it from the stage's outputs", file=self.path) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------
    def ensure(self, clip_ids: Iterable[str]) -> int:
        """Add clips not yet known as pending; known clips keep their state."""
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO clips (clip_id, status, created_at, updated_at)"
                " VALUES (?, 'pending', ?, ?)", ((c, now, now) for c in clip_ids))
            return self._db.total_changes - before

    def start(self, clip_id: str) -> None:
        """Count an attempt before the work begins, so a crash mid-clip still counts."""
        self._db.execute("UPDATE clips SET attempts = attempts + 1, updated_at = ? WHERE clip_id = ?",
                         (time.time(), clip_id))

    _DONE = ("UPDATE clips SET status='done', reason=NULL, permanent=0, detail=NULL,"
             " checksum=?, info=?, updated_at=? WHERE clip_id=?")

    def done(self, clip_id: str, checksum: str | None = None, info: dict[str, Any] | None = None) -> None:
        self._db.execute(self._DONE, (checksum, json.dumps(info or {}, sort_keys=True), time.time(), clip_id))

    def done_many(self, checksums: Iterable[tuple[str, str | None]]) -> None:
        """`done` for many clips in one transaction (a store flush's clips): one commit, and
        one round through SQLite's statement cache, instead of one per clip."""
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(self._DONE, ((checksum, "{}", now, clip_id)
                                              for clip_id, checksum in checksums))

    def failed(self, clip_id: str, reason: str, *, permanent: bool, detail: str = "",
               info: dict[str, Any] | None = None) -> None:
        self._db.execute(
            "UPDATE clips SET status='failed', reason=?, permanent=?, detail=?, info=?,"
            " updated_at=? WHERE clip_id=?",
            (reason, int(permanent), detail[:2000], json.dumps(info or {}, sort_keys=True),
             time.time(), clip_id))

    def requeue(self, reason: str | None = None, *, reset_attempts: bool = True) -> int:
        """Put failed clips (all, or those failed for `reason`) back to pending."""
        sql = "UPDATE clips SET status='pending', updated_at=?"
        if reset_attempts:
            sql += ", attempts=0"
        sql += " WHERE status='failed'"
        params: list[Any] = [time.time()]
        if reason:
            sql += " AND reason=?"
            params.append(reason)
        return self._db.execute(sql, params).rowcount

    def requeue_clips(self, clip_ids: Iterable[str]) -> int:
        """Put these failed clips back to pending with their attempts reset, keeping the
        reason and detail: what stopped them was the environment, not the clips."""
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            before = self._db.total_changes
            self._db.executemany(
                "UPDATE clips SET status='pending', permanent=0, attempts=0, updated_at=?"
                " WHERE clip_id=? AND status='failed'", ((now, c) for c in clip_ids))
            return self._db.total_changes - before

    def requeue_missing(self, present: set[str], reason: str, detail: str) -> list[str]:
        """Clips marked done whose output is not in `present` go back to pending with `reason`:
        the files are the truth, the ledger only a record of them."""
        done = [r[0] for r in self._db.execute("SELECT clip_id FROM clips WHERE status='done'")]
        lost = [c for c in done if c not in present]
        if lost:
            now = time.time()
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "UPDATE clips SET status='pending', reason=?, detail=?, attempts=0,"
                    " updated_at=? WHERE clip_id=?", ((reason, detail, now, c) for c in lost))
        return lost

    # -- reads --------------------------------------------------------------
    def todo(self, max_attempts: int | None = None) -> list[str]:
        """Clips to work on now: pending ones, and failed ones that are not permanent
        and have attempts left."""
        sql = ("SELECT clip_id FROM clips WHERE status='pending'"
               " OR (status='failed' AND permanent=0")
        params: list[Any] = []
        if max_attempts is not None:
            sql += " AND attempts < ?"
            params.append(max_attempts)
        sql += ") ORDER BY rowid"
        return [r[0] for r in self._db.execute(sql, params)]

    def get(self, clip_id: str) -> Entry | None:
        row = self._db.execute("SELECT clip_id, status, reason, permanent, attempts, created_at,"
                               " updated_at, checksum, detail, info FROM clips WHERE clip_id=?",
                               (clip_id,)).fetchone()
        return _entry(row) if row else None

    def entries(self) -> list[Entry]:
        rows = self._db.execute("SELECT clip_id, status, reason, permanent, attempts, created_at,"
                                " updated_at, checksum, detail, info FROM clips ORDER BY rowid")
        return [_entry(r) for r in rows]

    def status_of(self, clip_ids: Iterable[str] | None = None) -> dict[str, str]:
        rows = self._db.execute("SELECT clip_id, status FROM clips")
        wanted = None if clip_ids is None else set(clip_ids)
        return {c: s for c, s in rows if wanted is None or c in wanted}

    def done_span(self, since: float = 0.0) -> tuple[int, float | None, float | None]:
        """(clips done at or after `since`, the first and the last such time): the stage's
        recent pace, in one aggregate query (no row per clip in memory)."""
        n, first, last = self._db.execute(
            "SELECT COUNT(*), MIN(updated_at), MAX(updated_at) FROM clips"
            " WHERE status='done' AND updated_at >= ?", (since,)).fetchone()
        return int(n), first, last

    def counts(self) -> dict[str, Any]:
        """{'done': n, 'pending': n, 'failed': n, 'reasons': {reason: n}}"""
        out: dict[str, Any] = {PENDING: 0, DONE: 0, FAILED: 0, "reasons": {}}
        for status, n in self._db.execute("SELECT status, COUNT(*) FROM clips GROUP BY status"):
            out[status] = n
        for reason, n in self._db.execute(
                "SELECT reason, COUNT(*) FROM clips WHERE status='failed' GROUP BY reason"):
            out["reasons"][reason or "unknown"] = n
        return out


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Read-only, and `immutable` when SQLite cannot create its WAL index beside a file in a
    read-only directory (a ledger closed cleanly has no WAL left to miss)."""
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no ledger", str(path))
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6], row[7], row[8],
                 json.loads(row[9]) if row[9] else {})
