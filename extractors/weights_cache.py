"""Where pretrained weights live on disk, how they get there, and how we know they are the right bytes.

Every extractor loads its weights from one cache directory (`$AVEL_HOME`, default
`~/.cache/avel`) so a cluster can point all jobs at one shared, pre-filled copy, and so a
missing file fails with one clear message that names the file and the command that fetches
it, instead of a download attempt deep inside a worker on a machine without network.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# read once at import, as pipeline/core/atomic.py does: reading it means setting it, which
# is not safe while other threads create files
_UMASK = os.umask(0)
os.umask(_UMASK)

#: a `.part` file untouched this long belongs to a killed fetch: a live one writes every few
#: seconds and gives up after its read timeout (60 s) when the server goes quiet
STALE_PART_S = 600.0

#: which `avel weights fetch <what>` provides a cached file, for the missing-file message
FETCH_COMMANDS: dict[str, str] = {
    "vggish_model.ckpt": "avel weights fetch vggish",
    "vggish_pca_params.npz": "avel weights fetch vggish",
    "vggish.pt": "avel weights fetch vggish",
}


def cache_dir() -> Path:
    """The weights cache: `$AVEL_HOME` if set, else `~/.cache/avel` (not created here)."""
    home = os.environ.get("AVEL_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "avel"


def cached_file(name: str) -> Path:
    """Path of `name` inside the cache; FileNotFoundError naming it and its fetch command if absent."""
    path = cache_dir() / name
    if not path.is_file():
        how = FETCH_COMMANDS.get(name, "avel weights fetch ...")
        raise FileNotFoundError(
            f"weights file {name!r} not found at {path} (cache dir from $AVEL_HOME, default "
            f"~/.cache/avel); get it with `{how}`, or copy it there by hand")
    return path


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (weights files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def matches(digest: str, expected: str) -> bool:
    """True if `digest` equals `expected`, or starts with it when `expected` is a prefix of at
    least 8 hex digits (torch.hub names files with such a prefix, e.g. vggish-10086976.pth)."""
    expected = expected.lower()
    if len(expected) == 64:
        return digest == expected
    return len(expected) >= 8 and digest.startswith(expected)


def fetch(url: str, name: str, sha256: str | None, *, force: bool = False,
          timeout: float = 60.0) -> Path:
    """Download `url` into the cache as `name`, checking its sha256 before it becomes visible.

    The file is written to a temp file in the cache dir and renamed only after the checksum
    matched, so a failed or interrupted download never leaves a half file under the real name.
    An existing file with the right checksum is kept (idempotent). `sha256=None` accepts any
    bytes and logs the digest (for files whose publisher gives no checksum).
    """
    target = cache_dir() / name
    if target.is_file() and not force:
        if sha256 is None or matches(sha256_of(target), sha256):
            return target
        log.warning("cached %s has the wrong sha256; downloading it again", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        digest = sha256_of(tmp_name)
        if sha256 is not None and not matches(digest, sha256):
            raise ValueError(f"{url}: sha256 {digest} does not match the expected {sha256}")
        if sha256 is None:
            log.warning("%s has no published checksum; downloaded sha256 is %s", name, digest)
        shared_mode(tmp_name)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def remove_stale_parts(target: Path, older_than_s: float = STALE_PART_S) -> int:
    """Delete the `.part` files of `target` that a killed fetch left (hundreds of MB each);
    judged by age, not by a lock, because a cluster's shared cache may sit on a filesystem
    where locks do not reach other nodes, whose live fetches must be left alone."""
    removed = 0
    now = time.time()
    for part in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
        try:
            if now - part.stat().st_mtime > older_than_s:
                part.unlink()
                removed += 1
        except FileNotFoundError:  # another fetch removed it first
            continue
    if removed:
        log.info("removed %d partial download(s) of %s left by a killed fetch", removed, target.name)
    return removed


def write_into_cache(out: Path, write: Callable[[str], None]) -> None:
    """Write a converted file into the cache the way `fetch` writes a download: `write` fills
    a unique `.part` beside `out` (two nodes converting into one shared cache do not collide),
    which gets the usual file mode and one rename; the same age-based sweep first, so a killed
    conversion's temp (80-300 MB) does not stay there. `write` is torch.save bound to its
    state: this module loads no torch, since the doctor reads it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out)
    fd, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    try:
        write(temp)
        shared_mode(temp)
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def shared_mode(path: str | Path) -> None:
    """Give a file made with mkstemp (0600) the mode any other file gets (0666 less the umask):
    a cluster's shared cache is filled by one user and read by every job's."""
    os.chmod(path, 0o666 & ~_UMASK)
