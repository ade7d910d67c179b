"""What the stages read and write outside the code: the work directory, the weights cache, the
cookies file and the proxy, each tried the way the stage will use it."""

from __future__ import annotations

import http.cookiejar
import os
import tempfile
import time
from pathlib import Path

from extractors.weights_cache import cache_dir
from pipeline.core.config import resolve
from pipeline.core.errors import EXIT_CANNOT_WRITE
from pipeline.doctor.report import Check
from pipeline.doctor.scope import Scope


def workdir_check(scope: Scope) -> Check:
    """A file can be created in the work directory (or in the nearest existing parent, for one
    a stage would create): what every stage does first."""
    return _writable_check("workdir", scope.workdir, "blocker", EXIT_CANNOT_WRITE)


def cache_check(scope: Scope) -> Check:
    """The weights cache must take `avel weights fetch ...`; a mounted host directory that
    docker created is owned by root, which the image's user (uid 1000) cannot write."""
    return _writable_check("weights cache", cache_dir(), "warn", 0)


def cookies_check(scope: Scope, now: float | None = None) -> Check:
    path = scope.config.download.cookies_file
    if not path:
        return Check("cookies", "ok", "none configured (download.cookies_file)")
    status = scope.severity("download")
    path = str(resolve(scope.workdir, path))  # relative to the work directory, as download reads it
    jar = http.cookiejar.MozillaCookieJar()
    try:
        jar.load(path, ignore_discard=True, ignore_expires=True)
    except OSError as exc:  # LoadError (not a Netscape cookie file) is an OSError too
        reason = exc.strerror or str(exc).strip().splitlines()[0]
        return Check("cookies", status, f"{path}: cannot read it as a Netscape cookie file ({reason}); "
                     "export cookies.txt again (yt-dlp --cookies-from-browser ... --cookies FILE)")
    cookies = list(jar)
    now = time.time() if now is None else now
    expired = sum(1 for c in cookies if c.expires is not None and c.expires <= now)
    if not cookies:
        return Check("cookies", status, f"{path}: no cookies in it")
    summary = f"{path}: {len(cookies)} cookies, {expired} expired"
    if expired == len(cookies):
        return Check("cookies", status, f"{summary}: all expired, export them again")
    if expired:
        return Check("cookies", "warn", f"{summary}: export them again if YouTube asks to sign in")
    return Check("cookies", "ok", summary)


def proxy_check(scope: Scope) -> Check:
    configured = scope.config.download.proxy
    env = {k: v for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
           if (v := os.environ.get(k))}
    if configured:
        return Check("proxy", "ok", f"download.proxy = {_without_password(configured)} (yt-dlp uses it)")
    if env:
        name, value = next(iter(env.items()))
        return Check("proxy", "ok", f"none in the config; ${name} = {_without_password(value)} "
                     "(yt-dlp uses it)")
    return Check("proxy", "ok", "none (download.proxy unset, no *_PROXY variable)")


def _writable_check(name: str, directory: Path, status: str, code: int) -> Check:
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return Check(name, status, f"{directory}: {existing} is not a directory", code)  # type: ignore[arg-type]
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".avel-doctor-"):
            pass
    except OSError as exc:
        fix = f"cannot write as uid {os.getuid()} ({exc.strerror}); make it writable " \
              f"(chown {os.getuid()} or a writable mount)"
        return Check(name, status, f"{directory}: {fix}", code)  # type: ignore[arg-type]
    note = "" if existing == directory else f" (will be created under {existing})"
    return Check(name, "ok", f"{directory} writable{note}")


def _without_password(url: str) -> str:
    """A proxy URL as printed: user kept, password hidden."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
